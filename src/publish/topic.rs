// SPDX-License-Identifier: MPL-2.0

//! Topic templates: `site1/cam3/audio/{kind}/{group}` becomes one topic per kind and group.

/// What a message is, for its topic.
#[derive(Debug, Clone, Copy)]
pub struct TopicFields<'a> {
    /// `event` or `window`.
    pub kind: &'a str,
    /// The event's group; `tags` for window results.
    pub group: &'a str,
    /// `start` or `stop` for events; `tags` for window results.
    pub event: &'a str,
    pub element: &'a str,
    pub pipeline: &'a str,
}

const KEYS: [&str; 5] = ["kind", "group", "event", "element", "pipeline"];

/// Checks a template: its placeholders are known and it makes a valid MQTT topic name.
pub fn validate(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Err("the topic is empty".into());
    }
    if template.contains(['+', '#', '\0']) {
        return Err(format!(
            "topic \"{template}\" contains a wildcard (+ or #), which a published topic may not"
        ));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("topic \"{template}\" has a '{{' without its '}}'"));
        };
        let key = &rest[open + 1..open + close];
        if !KEYS.contains(&key) {
            return Err(format!(
                "topic \"{template}\" names {{{key}}}; the placeholders are {{{}}}",
                KEYS.join("}, {")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// The topic `template` (already validated) names for `fields`. Characters a topic level may
/// not hold (`+`, `#`, `/`) in a field's value become `_`.
pub fn expand(template: &str, fields: &TopicFields) -> String {
    let clean = |s: &str| s.replace(['+', '#', '/', '\0'], "_");
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').unwrap_or(rest.len() - open - 1);
        let value = match &rest[open + 1..close] {
            "kind" => fields.kind,
            "group" => fields.group,
            "event" => fields.event,
            "element" => fields.element,
            "pipeline" => fields.pipeline,
            other => other,
        };
        out.push_str(&clean(value));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: TopicFields = TopicFields {
        kind: "event",
        group: "glass",
        event: "start",
        element: "tagger/0",
        pipeline: "pipeline0",
    };

    #[test]
    fn placeholders_expand_and_unsafe_characters_are_replaced() {
        assert_eq!(
            expand("site1/cam3/{kind}/{group}/{event}", &EVENT),
            "site1/cam3/event/glass/start"
        );
        assert_eq!(expand("{pipeline}/{element}", &EVENT), "pipeline0/tagger_0");
        assert_eq!(expand("plain/topic", &EVENT), "plain/topic");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(validate("a/{kind}/{group}").is_ok());
        assert!(validate("a/#").unwrap_err().contains("wildcard"));
        assert!(validate("a/{colour}").unwrap_err().contains("{kind}"));
        assert!(validate("a/{kind").unwrap_err().contains("without"));
        assert!(validate("").is_err());
    }
}
