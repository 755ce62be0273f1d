// SPDX-License-Identifier: MPL-2.0

//! Event groups: user-facing event names ("gunshot", "glass") mapped to model classes, read from
//! a TOML preset (the shipped `models/event_groups.toml`, plus the user's own on top).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Smoothing;

/// The shipped preset, compiled in so an installed plugin needs no data files.
pub const BUILTIN_PRESET: &str = include_str!("../../models/event_groups.toml");

/// Per-group values that override the element-wide ones; `None` = use the element's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub on_threshold: Option<f32>,
    pub off_threshold: Option<f32>,
    pub min_duration: Option<f64>,
    pub hold: Option<f64>,
    pub refractory: Option<f64>,
    pub smoothing: Option<Smoothing>,
    pub smoothing_windows: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GroupKind {
    /// Scored by the model: the maximum of `classes`, vetoed at onset by `confusers`.
    Classes {
        classes: Vec<String>,
        confusers: Vec<String>,
        confuser_margin: f32,
    },
    /// Scored by loudness alone.
    Level {
        level_db: Option<f32>,
        rise_db: Option<f32>,
    },
}

/// What a class group scores on when the model carries trained heads: their classes replace the
/// AudioSet ones, with their own confusers and thresholds (a head's scores are calibrated
/// differently from AudioSet's).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    pub classes: Vec<String>,
    pub confusers: Vec<String>,
    pub confuser_margin: f32,
    pub on_threshold: Option<f32>,
    pub off_threshold: Option<f32>,
    pub smoothing: Option<Smoothing>,
}

/// A second look at the audio around each candidate (see `tags::second_look`): the second
/// model's classes (by name) that confirm the group, its confusers, and the thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct LookSpec {
    pub classes: Vec<String>,
    pub confusers: Vec<String>,
    pub confuser_margin: f32,
    /// The second model's group score a candidate needs; `head_confirm_threshold` instead when
    /// the first stage scores on trained heads, if set.
    pub confirm_threshold: f32,
    pub head_confirm_threshold: Option<f32>,
    /// The first stage's on-threshold while a second model confirms, when it scores on
    /// AudioSet classes and on trained heads respectively; unset keeps the group's own.
    pub candidate_threshold: Option<f32>,
    pub head_candidate_threshold: Option<f32>,
    /// The first-stage score at which a candidate needs no look (AudioSet classes, heads).
    pub pass_threshold: Option<f32>,
    pub head_pass_threshold: Option<f32>,
    /// Used instead when the second model carries trained heads with every one of its classes
    /// and confusers (`[group.NAME.look.head]`).
    pub head: Option<Box<LookSpec>>,
}

impl LookSpec {
    /// The look to take with a second model of these labels: its head look when the model has
    /// every class and confuser that names, else this one.
    pub fn for_labels(&self, labels: &[String]) -> &LookSpec {
        let has = |c: &String| labels.iter().any(|l| l.eq_ignore_ascii_case(c.trim()));
        match &self.head {
            Some(h) if h.classes.iter().chain(&h.confusers).all(has) => h,
            _ => self,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    pub description: String,
    pub kind: GroupKind,
    pub overrides: Overrides,
    /// Used instead of `kind`'s classes when the model has every one of its classes.
    pub head: Option<HeadSpec>,
    /// Used when the element has a second model.
    pub look: Option<LookSpec>,
}

/// A set of named groups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preset {
    pub groups: BTreeMap<String, GroupSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GroupToml {
    #[serde(default)]
    description: String,
    kind: Option<String>,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    confusers: Vec<String>,
    confuser_margin: Option<f32>,
    on_threshold: Option<f32>,
    off_threshold: Option<f32>,
    min_duration: Option<f64>,
    hold: Option<f64>,
    refractory: Option<f64>,
    smoothing: Option<String>,
    smoothing_windows: Option<u32>,
    level_db: Option<f32>,
    rise_db: Option<f32>,
    head: Option<HeadToml>,
    look: Option<LookToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LookToml {
    classes: Vec<String>,
    #[serde(default)]
    confusers: Vec<String>,
    confuser_margin: Option<f32>,
    confirm_threshold: f32,
    head_confirm_threshold: Option<f32>,
    candidate_threshold: Option<f32>,
    head_candidate_threshold: Option<f32>,
    pass_threshold: Option<f32>,
    head_pass_threshold: Option<f32>,
    head: Option<Box<LookToml>>,
}

impl LookToml {
    fn into_spec(self, group: &str) -> Result<LookSpec, String> {
        let name = format!("{group}.look");
        self.into_look(&name)
    }

    fn into_look(self, name: &str) -> Result<LookSpec, String> {
        let name = name.to_string();
        if self.classes.is_empty() {
            return Err(format!("group '{name}' lists no classes"));
        }
        check_unit(&name, "confirm-threshold", Some(self.confirm_threshold))?;
        check_unit(&name, "head-confirm-threshold", self.head_confirm_threshold)?;
        check_unit(&name, "candidate-threshold", self.candidate_threshold)?;
        check_unit(
            &name,
            "head-candidate-threshold",
            self.head_candidate_threshold,
        )?;
        check_unit(&name, "pass-threshold", self.pass_threshold)?;
        check_unit(&name, "head-pass-threshold", self.head_pass_threshold)?;
        let head = match self.head {
            Some(h) if h.head.is_some() => {
                return Err(format!("group '{name}.head' takes no head of its own"));
            }
            Some(h) => Some(Box::new(h.into_look(&format!("{name}.head"))?)),
            None => None,
        };
        Ok(LookSpec {
            classes: self.classes,
            confusers: self.confusers,
            confuser_margin: check_margin(&name, self.confuser_margin)?,
            confirm_threshold: self.confirm_threshold,
            head_confirm_threshold: self.head_confirm_threshold,
            candidate_threshold: self.candidate_threshold,
            head_candidate_threshold: self.head_candidate_threshold,
            pass_threshold: self.pass_threshold,
            head_pass_threshold: self.head_pass_threshold,
            head,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HeadToml {
    classes: Vec<String>,
    #[serde(default)]
    confusers: Vec<String>,
    confuser_margin: Option<f32>,
    on_threshold: Option<f32>,
    off_threshold: Option<f32>,
    smoothing: Option<String>,
}

impl HeadToml {
    fn into_spec(self, group: &str) -> Result<HeadSpec, String> {
        let name = format!("{group}.head");
        if self.classes.is_empty() {
            return Err(format!("group '{name}' lists no classes"));
        }
        check_thresholds(&name, self.on_threshold, self.off_threshold)?;
        let margin = check_margin(&name, self.confuser_margin)?;
        Ok(HeadSpec {
            classes: self.classes,
            confusers: self.confusers,
            confuser_margin: margin,
            on_threshold: self.on_threshold,
            off_threshold: self.off_threshold,
            smoothing: parse_smoothing_key(&name, self.smoothing.as_deref())?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetToml {
    #[serde(default)]
    group: BTreeMap<String, GroupToml>,
}

pub fn parse_smoothing(s: &str) -> Option<Smoothing> {
    match s.to_ascii_lowercase().as_str() {
        "none" => Some(Smoothing::None),
        "mean" => Some(Smoothing::Mean),
        "max" => Some(Smoothing::Max),
        "ema" => Some(Smoothing::Ema),
        _ => None,
    }
}

fn parse_smoothing_key(group: &str, value: Option<&str>) -> Result<Option<Smoothing>, String> {
    match value {
        None => Ok(None),
        Some(s) => parse_smoothing(s).map(Some).ok_or_else(|| {
            format!("group '{group}': smoothing '{s}' is not one of none, mean, max, ema")
        }),
    }
}

fn check_unit(group: &str, key: &str, v: Option<f32>) -> Result<(), String> {
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            Err(format!("group '{group}': {key} = {x} is outside 0..1"))
        }
        _ => Ok(()),
    }
}

fn check_thresholds(group: &str, on: Option<f32>, off: Option<f32>) -> Result<(), String> {
    check_unit(group, "on-threshold", on)?;
    check_unit(group, "off-threshold", off)?;
    match (on, off) {
        (Some(on), Some(off)) if off > on => Err(format!(
            "group '{group}': off-threshold {off} is above on-threshold {on}"
        )),
        _ => Ok(()),
    }
}

fn check_margin(group: &str, margin: Option<f32>) -> Result<f32, String> {
    match margin.unwrap_or(1.0) {
        m if m.is_finite() && m >= 0.0 => Ok(m),
        _ => Err(format!("group '{group}': confuser-margin must be >= 0")),
    }
}

fn check_seconds(group: &str, key: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(x) if !(0.0..=86400.0).contains(&x) => Err(format!(
            "group '{group}': {key} = {x} must be between 0 and 86400 seconds"
        )),
        _ => Ok(()),
    }
}

impl GroupToml {
    fn into_spec(self, name: &str) -> Result<GroupSpec, String> {
        if name.is_empty() || name.contains([',', ';']) || name.trim() != name {
            return Err(format!(
                "group name '{name}' must be non-empty, without commas, semicolons or outer spaces"
            ));
        }
        check_thresholds(name, self.on_threshold, self.off_threshold)?;
        check_seconds(name, "min-duration", self.min_duration)?;
        check_seconds(name, "hold", self.hold)?;
        check_seconds(name, "refractory", self.refractory)?;
        let smoothing = parse_smoothing_key(name, self.smoothing.as_deref())?;
        if self.smoothing_windows == Some(0) {
            return Err(format!(
                "group '{name}': smoothing-windows must be at least 1"
            ));
        }
        let kind = match self.kind.as_deref().unwrap_or("classes") {
            "classes" => {
                if self.classes.is_empty() {
                    return Err(format!("group '{name}' lists no classes"));
                }
                if self.level_db.is_some() || self.rise_db.is_some() {
                    return Err(format!(
                        "group '{name}': level-db and rise-db belong to kind = \"level\" groups"
                    ));
                }
                let margin = check_margin(name, self.confuser_margin)?;
                GroupKind::Classes {
                    classes: self.classes,
                    confusers: self.confusers,
                    confuser_margin: margin,
                }
            }
            "level" => {
                if !self.classes.is_empty()
                    || !self.confusers.is_empty()
                    || self.head.is_some()
                    || self.look.is_some()
                {
                    return Err(format!(
                        "group '{name}' is kind = \"level\" and takes no classes, confusers, head or look"
                    ));
                }
                for (key, v) in [("level-db", self.level_db), ("rise-db", self.rise_db)] {
                    if let Some(x) = v
                        && !(-200.0..=200.0).contains(&x)
                    {
                        return Err(format!("group '{name}': {key} = {x} is out of range"));
                    }
                }
                GroupKind::Level {
                    level_db: self.level_db,
                    rise_db: self.rise_db,
                }
            }
            other => {
                return Err(format!(
                    "group '{name}': kind '{other}' is not \"classes\" or \"level\""
                ));
            }
        };
        let head = self.head.map(|h| h.into_spec(name)).transpose()?;
        let look = self.look.map(|l| l.into_spec(name)).transpose()?;
        Ok(GroupSpec {
            name: name.to_string(),
            description: self.description,
            kind,
            head,
            look,
            overrides: Overrides {
                on_threshold: self.on_threshold,
                off_threshold: self.off_threshold,
                min_duration: self.min_duration,
                hold: self.hold,
                refractory: self.refractory,
                smoothing,
                smoothing_windows: self.smoothing_windows,
            },
        })
    }
}

impl Preset {
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: PresetToml = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut groups = BTreeMap::new();
        for (name, g) in raw.group {
            groups.insert(name.clone(), g.into_spec(&name)?);
        }
        Ok(Self { groups })
    }

    pub fn builtin() -> Self {
        Self::parse(BUILTIN_PRESET).expect("the shipped preset is valid (tested)")
    }

    /// The shipped groups with the user's file read on top: same names replace, new names add.
    pub fn with_user_file(path: Option<&Path>) -> Result<Self, String> {
        let mut preset = Self::builtin();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read event preset {}: {e}", path.display()))?;
            let user =
                Self::parse(&text).map_err(|e| format!("event preset {}: {e}", path.display()))?;
            preset.groups.extend(user.groups);
        }
        Ok(preset)
    }

    /// The groups named in `watch` (separated by ',' or ';', spaces ignored), or the names that
    /// are not in the preset.
    pub fn select(&self, watch: &str) -> Result<Vec<GroupSpec>, Vec<String>> {
        let mut chosen: Vec<GroupSpec> = Vec::new();
        let mut unknown = Vec::new();
        for name in watch
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match self.groups.get(name) {
                Some(g) if !chosen.iter().any(|c| c.name == g.name) => chosen.push(g.clone()),
                Some(_) => {}
                None => unknown.push(name.to_string()),
            }
        }
        if unknown.is_empty() {
            Ok(chosen)
        } else {
            Err(unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_preset_has_the_required_groups() {
        let p = Preset::builtin();
        for name in [
            "gunshot",
            "glass",
            "explosion",
            "scream",
            "siren",
            "dog",
            "baby-cry",
            "speech",
            "music",
            "loud",
        ] {
            assert!(p.groups.contains_key(name), "{name} missing");
        }
        let GroupKind::Classes {
            classes, confusers, ..
        } = &p.groups["gunshot"].kind
        else {
            panic!("gunshot is a class group");
        };
        for c in [
            "Gunshot, gunfire",
            "Machine gun",
            "Fusillade",
            "Cap gun",
            "Artillery fire",
        ] {
            assert!(classes.iter().any(|x| x == c), "{c}");
        }
        assert!(confusers.iter().any(|x| x == "Fireworks"));
        // Every detection group has a head table, and fireworks is a group of its own that the
        // gunshot head must beat.
        for name in [
            "gunshot",
            "glass",
            "scream",
            "siren",
            "dog",
            "baby-cry",
            "fireworks",
        ] {
            assert!(p.groups[name].head.is_some(), "{name} has no head table");
        }
        let head = p.groups["gunshot"].head.as_ref().unwrap();
        assert_eq!(head.confusers, ["head/fireworks"]);
        assert!(matches!(p.groups["loud"].kind, GroupKind::Level { .. }));
    }

    #[test]
    fn user_file_replaces_and_adds_groups() {
        let dir = std::env::temp_dir().join(format!("audiotagger-preset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("night.toml");
        std::fs::write(
            &path,
            "[group.gunshot]\nclasses = [\"Gunshot, gunfire\"]\non-threshold = 0.6\n\
             [group.knock]\nclasses = [\"Knock\"]\nhold = 1.5\n",
        )
        .unwrap();
        let p = Preset::with_user_file(Some(&path)).unwrap();
        assert_eq!(p.groups["gunshot"].overrides.on_threshold, Some(0.6));
        assert_eq!(p.groups["knock"].overrides.hold, Some(1.5));
        assert!(p.groups.contains_key("glass"));
        let err = Preset::with_user_file(Some(&dir.join("missing.toml"))).unwrap_err();
        assert!(err.contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_presets_say_what_is_wrong() {
        for (text, needle) in [
            ("[group.a]\nclasses = []\n", "lists no classes"),
            (
                "[group.a]\nclasses = [\"Dog\"]\non-threshold = 1.5\n",
                "outside 0..1",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\non-threshold = 0.2\noff-threshold = 0.4\n",
                "above on-threshold",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\nsmoothing = \"median\"\n",
                "median",
            ),
            ("[group.a]\nclasses = [\"Dog\"]\ncolour = 1\n", "colour"),
            (
                "[group.a]\nkind = \"level\"\nclasses = [\"Dog\"]\n",
                "takes no classes",
            ),
            ("[group.a]\nkind = \"vibes\"\n", "vibes"),
            ("[group.\"a,b\"]\nclasses = [\"Dog\"]\n", "commas"),
            ("[group.a]\nclasses = \"Dog\"\n", "classes"),
            ("[group.a]\nclasses = [\"Dog\"]\nhold = -1.0\n", "hold"),
            (
                "[group.a]\nclasses = [\"Dog\"]\n[group.a.head]\nclasses = []\n",
                "'a.head' lists no classes",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\n[group.a.head]\nclasses = [\"head/dog\"]\non-threshold = 2.0\n",
                "outside 0..1",
            ),
            (
                "[group.a]\nkind = \"level\"\n[group.a.head]\nclasses = [\"head/dog\"]\n",
                "takes no classes, confusers, head or look",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\n[group.a.look]\nclasses = [\"Bark\"]\n",
                "confirm-threshold",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\n[group.a.look]\nclasses = [\"Bark\"]\nconfirm-threshold = 3.0\n",
                "'a.look': confirm-threshold = 3 is outside 0..1",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\n[group.a.look]\nclasses = [\"Bark\"]\nconfirm-threshold = 0.3\n\
                 [group.a.look.head]\nclasses = [\"head/dog\"]\nconfirm-threshold = 1.5\n",
                "'a.look.head': confirm-threshold = 1.5 is outside 0..1",
            ),
            (
                "[group.a]\nclasses = [\"Dog\"]\n[group.a.look]\nclasses = [\"Bark\"]\nconfirm-threshold = 0.3\n\
                 [group.a.look.head]\nclasses = [\"head/dog\"]\nconfirm-threshold = 0.5\n\
                 [group.a.look.head.head]\nclasses = [\"x\"]\nconfirm-threshold = 0.5\n",
                "'a.look.head' takes no head of its own",
            ),
        ] {
            let err = Preset::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn watch_lists_take_commas_or_semicolons() {
        let p = Preset::builtin();
        let g = p.select(" gunshot, glass;gunshot ").unwrap();
        assert_eq!(
            g.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["gunshot", "glass"]
        );
        assert!(p.select("").unwrap().is_empty());
        assert_eq!(p.select("gunshot,lasers").unwrap_err(), ["lasers"]);
    }
}
