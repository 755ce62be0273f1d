// SPDX-License-Identifier: MPL-2.0

//! The JSON an `audiotagger` result becomes (schema `audiotagger/1`, README "Publishing").
//!
//! The result's structure is carried field by field under the same names as the bus message,
//! so the README's message fields document the payload too; times (GstClockTime) become
//! integer nanoseconds, an unknown time `null`. The envelope adds `schema`, `kind`, `seq`,
//! `wallclock`, `pipeline`, `publisher` and `element` (the `audiotagger` that found it).

use std::time::{SystemTime, UNIX_EPOCH};

use gst::glib;
use gst::prelude::*;
use serde_json::{Map, Value};

pub const SCHEMA: &str = "audiotagger/1";
/// Structure names of the in-band results `audiotagger` sends (its message names).
pub const WINDOW: &str = "audiotagger";
pub const EVENT: &str = "audiotagger-event";

/// Where a payload comes from.
pub struct Envelope<'a> {
    pub seq: u64,
    pub pipeline: &'a str,
    pub publisher: &'a str,
    pub wallclock: SystemTime,
}

/// `event` or `window`, for an in-band result's structure; None for anything else.
pub fn kind(s: &gst::StructureRef) -> Option<&'static str> {
    match s.name().as_str() {
        WINDOW => Some("window"),
        EVENT => Some("event"),
        _ => None,
    }
}

/// The JSON object of result `s` (whose [`kind`] is `kind`).
pub fn to_json(s: &gst::StructureRef, kind: &str, envelope: &Envelope) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("schema".into(), SCHEMA.into());
    map.insert("kind".into(), kind.into());
    map.insert("seq".into(), envelope.seq.into());
    map.insert("wallclock".into(), rfc3339(envelope.wallclock).into());
    map.insert("pipeline".into(), envelope.pipeline.into());
    map.insert("publisher".into(), envelope.publisher.into());
    for (name, value) in s.iter() {
        map.insert(name.to_string(), json(value));
    }
    map
}

fn json(v: &glib::Value) -> Value {
    let t = v.type_();
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    if t == glib::Type::STRING {
        v.get::<Option<String>>()
            .ok()
            .flatten()
            .map_or(Value::Null, Value::String)
    } else if t == glib::Type::BOOL {
        Value::Bool(v.get().unwrap_or_default())
    } else if t == glib::Type::I32 {
        v.get::<i32>().map_or(Value::Null, Value::from)
    } else if t == glib::Type::U32 {
        v.get::<u32>().map_or(Value::Null, Value::from)
    } else if t == glib::Type::I64 {
        v.get::<i64>().map_or(Value::Null, Value::from)
    } else if t == glib::Type::U64 {
        // GstClockTime is a guint64 whose "none" is all ones.
        match v.get::<u64>() {
            Ok(u64::MAX) | Err(_) => Value::Null,
            Ok(x) => Value::from(x),
        }
    } else if t == glib::Type::F64 {
        v.get::<f64>().map_or(Value::Null, number)
    } else if t == glib::Type::F32 {
        v.get::<f32>().map_or(Value::Null, |x| number(x as f64))
    } else if t == gst::Array::static_type() {
        v.get::<gst::Array>()
            .map(|a| Value::Array(a.iter().map(|x| json(x)).collect()))
            .unwrap_or(Value::Null)
    } else {
        v.serialize()
            .map_or(Value::Null, |s| Value::String(s.into()))
    }
}

/// `2026-12-03T12:34:56.789012Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_micros()
    )
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wallclock_is_utc_rfc3339() {
        // 1 700 000 000 s after the epoch is 2023-11-14 22:13:20 UTC (`date -u -d @1700000000`).
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // A leap day.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn fields_keep_their_names_and_times_become_nanoseconds() {
        gst::init().unwrap();
        let mut s = gst::Structure::new_empty(EVENT);
        s.set("event", "start");
        s.set("group", "glass");
        s.set("timestamp", gst::ClockTime::from_mseconds(1500));
        s.set("stream-time", None::<gst::ClockTime>);
        s.set("peak-score", 0.75f64);
        s.set("labels", gst::Array::new(["Glass", "Shatter"]));
        s.set("scores", gst::Array::new([0.75f64, 0.5]));
        s.set("suppressed", false);
        let kind = kind(&s).unwrap();
        let envelope = Envelope {
            seq: 7,
            pipeline: "p",
            publisher: "pub",
            wallclock: UNIX_EPOCH,
        };
        let v = Value::Object(to_json(&s, kind, &envelope));
        assert_eq!(v["schema"], "audiotagger/1");
        assert_eq!(v["kind"], "event");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["event"], "start");
        assert_eq!(v["timestamp"], 1_500_000_000u64);
        assert_eq!(v["stream-time"], Value::Null);
        assert_eq!(v["peak-score"], 0.75);
        assert_eq!(v["labels"], serde_json::json!(["Glass", "Shatter"]));
        assert_eq!(v["scores"], serde_json::json!([0.75, 0.5]));
        assert_eq!(v["suppressed"], false);
        assert_eq!(kind_of("other"), None);
    }

    fn kind_of(name: &str) -> Option<&'static str> {
        kind(&gst::Structure::new_empty(name))
    }
}
