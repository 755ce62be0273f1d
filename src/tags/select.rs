// SPDX-License-Identifier: MPL-2.0

//! Which classes to report: allow and deny lists by label, a threshold and top-k.

/// One reported class.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub class_id: usize,
    pub score: f32,
}

/// The classes a user wants to see, resolved from label names once per configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassFilter {
    allowed: Option<Vec<bool>>,
    excluded: Vec<bool>,
}

impl ClassFilter {
    /// `allow` and `exclude` are `;`-separated label names (AudioSet labels contain commas,
    /// e.g. "Gunshot, gunfire", but no semicolons), matched without regard to case or
    /// surrounding spaces; an empty allow list allows every class. Returns the filter and
    /// the names that matched no label, for the caller to report.
    pub fn new(labels: &[String], allow: &str, exclude: &str) -> (Self, Vec<String>) {
        let mut unknown = Vec::new();
        let mut resolve = |list: &str| -> Option<Vec<bool>> {
            let names: Vec<&str> = list
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if names.is_empty() {
                return None;
            }
            let mut mask = vec![false; labels.len()];
            for name in names {
                let mut found = false;
                for (i, l) in labels.iter().enumerate() {
                    if l.eq_ignore_ascii_case(name) {
                        mask[i] = true;
                        found = true;
                    }
                }
                if !found {
                    unknown.push(name.to_string());
                }
            }
            Some(mask)
        };
        let allowed = resolve(allow);
        let excluded = resolve(exclude).unwrap_or_else(|| vec![false; labels.len()]);
        (Self { allowed, excluded }, unknown)
    }

    pub fn accepts(&self, class_id: usize) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|a| a.get(class_id).copied().unwrap_or(false))
            && !self.excluded.get(class_id).copied().unwrap_or(false)
    }
}

/// The `k` highest-scoring accepted classes with a score of at least `threshold`, best first.
pub fn top_k(scores: &[f32], k: usize, threshold: f32, filter: &ClassFilter) -> Vec<Tag> {
    let mut tags: Vec<Tag> = scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| s >= threshold && filter.accepts(i))
        .map(|(class_id, &score)| Tag { class_id, score })
        .collect();
    tags.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.class_id.cmp(&b.class_id))
    });
    tags.truncate(k);
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["Speech", "Music", "Dog", "Gunshot, gunfire"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn top_k_orders_thresholds_and_truncates() {
        let f = ClassFilter::default();
        let t = top_k(&[0.2, 0.9, 0.05, 0.5], 2, 0.1, &f);
        assert_eq!(
            t,
            vec![
                Tag {
                    class_id: 1,
                    score: 0.9
                },
                Tag {
                    class_id: 3,
                    score: 0.5
                }
            ]
        );
        assert!(top_k(&[0.01, 0.02], 5, 0.1, &f).is_empty());
    }

    #[test]
    fn allow_and_exclude_lists_match_labels_case_insensitively() {
        let (f, unknown) = ClassFilter::new(&labels(), " speech ; gunshot, GUNFIRE ;Cat", "");
        assert_eq!(unknown, vec!["Cat"]);
        assert!(f.accepts(0) && !f.accepts(1) && !f.accepts(2) && f.accepts(3));
        let (f, unknown) = ClassFilter::new(&labels(), "", "music");
        assert!(unknown.is_empty());
        assert!(f.accepts(0) && !f.accepts(1) && f.accepts(2));
        assert_eq!(
            top_k(&[0.2, 0.9, 0.05, 0.5], 5, 0.1, &f)
                .iter()
                .map(|t| t.class_id)
                .collect::<Vec<_>>(),
            vec![3, 0]
        );
    }
}
