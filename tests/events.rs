// SPDX-License-Identifier: MPL-2.0
//! Start/stop events, the level gate and levels, through the element: a real gunshot in real
//! speech, watch and preset changes while playing, EOS and configuration errors.

mod common;

use gst::prelude::*;
use gstaudiotagger::frontend::StreamResampler;

const RATE: u64 = 16000;

/// These tests read each buffer's results as soon as it is pushed: `blocking` reports them
/// before the push returns.
fn harness(props: &[(&str, &str)]) -> gst_check::Harness {
    let props: Vec<_> = [("mode", "blocking")]
        .iter()
        .chain(props)
        .copied()
        .collect();
    common::tagger_harness(RATE as i32, &props)
}

/// Pushes `audio` in 100 ms buffers from `*pts` on.
fn push(h: &mut gst_check::Harness, audio: &[f32], pts: &mut gst::ClockTime) {
    for chunk in audio.chunks(1600) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut buf = gst::Buffer::from_mut_slice(bytes);
        let duration = gst::ClockTime::from_nseconds(chunk.len() as u64 * 1_000_000_000 / RATE);
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(*pts);
            b.set_duration(duration);
        }
        *pts += duration;
        h.push(buf).unwrap();
    }
}

/// (window messages, event messages) posted so far.
fn messages(h: &gst_check::Harness) -> (Vec<gst::Structure>, Vec<gst::Structure>) {
    let bus = h.element().unwrap().bus().unwrap();
    let all: Vec<gst::Structure> =
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Element]))
            .filter_map(|m| m.structure().map(|s| s.to_owned()))
            .collect();
    let (events, windows) = all
        .into_iter()
        .partition(|s| s.name() == "audiotagger-event");
    (windows, events)
}

fn seconds(s: &gst::StructureRef, field: &str) -> f64 {
    s.get::<u64>(field).unwrap() as f64 / 1e9
}

fn kind(s: &gst::StructureRef) -> (String, String) {
    (
        s.get::<String>("event").unwrap(),
        s.get::<String>("group").unwrap(),
    )
}

/// A WAV from ../shared/audio as 16 kHz mono.
fn load(name: &str) -> Vec<f32> {
    load_path(&common::shared_audio().join(name))
}

fn load_path(path: &std::path::Path) -> Vec<f32> {
    let reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
    let samples: Vec<f32> = reader
        .into_samples::<i32>()
        .map(|s| s.unwrap() as f32 / scale)
        .collect();
    let ch = spec.channels as usize;
    let mono: Vec<f32> = samples
        .chunks(ch)
        .map(|f| f.iter().sum::<f32>() / ch as f32)
        .collect();
    let mut r = StreamResampler::new(spec.sample_rate, RATE as u32).unwrap();
    let mut out = Vec::new();
    r.process(&mono, &mut out);
    r.flush(&mut out);
    out
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// 12 s of a real speaker with `event` added at 4.0 s, `snr_db` above the speech over the
/// event's length, scaled as a recorder's limiter would so nothing clips.
fn in_speech(event: &[f32], snr_db: f32) -> Vec<f32> {
    let mut mix: Vec<f32> = load("long/speech__asterisk__1.wav")[..12 * RATE as usize].to_vec();
    let at = 4 * RATE as usize;
    let n = event.len().min(mix.len() - at);
    let gain = rms(&mix[at..at + n]) * 10f32.powf(snr_db / 20.0) / rms(&event[..n]);
    for (m, s) in mix[at..at + n].iter_mut().zip(event) {
        *m += gain * s;
    }
    let peak = mix.iter().fold(0.0f32, |p, x| p.max(x.abs()));
    mix.iter_mut().for_each(|x| *x *= 0.9 / peak.max(0.9));
    mix
}

fn noise(n: usize, amplitude: f32, seed: u64) -> Vec<f32> {
    common::noise_bytes(n, seed)
        .into_iter()
        .map(|b| (b as f32 / 127.5 - 1.0) * amplitude)
        .collect()
}

#[test]
fn a_real_gunshot_in_real_speech_starts_and_stops_an_event_where_it_is() {
    // 12 s of a real speaker; at 4.0 s a real gunshot recording 20 dB above the speech.
    let shot = load("gunshot__freesound__1.wav");
    let mix = in_speech(&shot, 20.0);
    // The first shot is at the clip's start: the truth onset is 4.0 s.
    let first_loud = shot.iter().position(|x| x.abs() > 0.1).unwrap() as f64 / RATE as f64;
    assert!(first_loud < 0.2, "{first_loud}");

    let mut h = harness(&[("watch", "gunshot,glass,siren,loud")]);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &mix, &mut pts);
    h.push_event(gst::event::Eos::new());
    let (windows, events) = messages(&h);
    assert_eq!(windows.len(), 24);
    let summary: Vec<_> = events
        .iter()
        .map(|e| (kind(e), seconds(e, "timestamp")))
        .collect();
    // Speech alone (0-3.5 s) raises nothing.
    assert!(
        events.iter().all(|e| seconds(e, "timestamp") > 3.0),
        "{summary:?}"
    );
    let start = events
        .iter()
        .find(|e| kind(e) == ("start".into(), "gunshot".into()))
        .unwrap_or_else(|| panic!("no gunshot: {summary:?}"));
    let onset = seconds(start, "timestamp");
    assert!((3.5..=4.6).contains(&onset), "onset {onset}: {summary:?}");
    assert!(start.get::<f64>("peak-score").unwrap() >= 0.15);
    assert!(
        common::strings(start, "labels")
            .iter()
            .any(|l| l == "Gunshot, gunfire")
    );
    assert_eq!(
        start.get::<Option<gst::ClockTime>>("running-time").unwrap(),
        Some(gst::ClockTime::from_nseconds(
            start.get::<u64>("timestamp").unwrap()
        ))
    );
    let stop = events
        .iter()
        .find(|e| kind(e) == ("stop".into(), "gunshot".into()))
        .expect("the gunshot event stops");
    assert_eq!(seconds(stop, "timestamp"), onset);
    let end = seconds(stop, "end-timestamp");
    assert!(end > onset && end < 12.0, "{onset}..{end}");
    assert_eq!(
        stop.get::<u64>("duration").unwrap(),
        stop.get::<u64>("end-timestamp").unwrap() - stop.get::<u64>("timestamp").unwrap()
    );
    // The loudness trigger hears the shot's rise over the speech too.
    let loud = events
        .iter()
        .find(|e| kind(e) == ("start".into(), "loud".into()))
        .unwrap_or_else(|| panic!("no loud event: {summary:?}"));
    assert!(
        (3.5..=4.6).contains(&seconds(loud, "timestamp")),
        "{summary:?}"
    );
    assert!(loud.get::<f64>("peak-level-db").unwrap() > -20.0);
    // Every start has its stop by EOS.
    let starts = events.iter().filter(|e| kind(e).0 == "start").count();
    assert_eq!(starts * 2, events.len(), "{summary:?}");
}

/// The path of `models/NAME`, a model set-up builds.
fn built_model(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/setup.sh builds it",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// The model with the trained heads.
fn heads_model() -> String {
    built_model("yamnet-heads.onnx")
}

/// The security groups, scored by the heads.
const SECURITY: &str = "gunshot,glass,scream,siren,fireworks";

/// The event messages the heads model posts on `audio`, watching `watch`.
fn head_events(audio: &[f32], watch: &str) -> Vec<gst::Structure> {
    let model = heads_model();
    let mut h = harness(&[("model", &model), ("watch", watch)]);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, audio, &mut pts);
    h.push_event(gst::event::Eos::new());
    messages(&h).1
}

/// (event, group, onset s) of each event message.
fn summary(events: &[gst::Structure]) -> Vec<(String, String, f64)> {
    events
        .iter()
        .map(|e| {
            let (event, group) = kind(e);
            (event, group, seconds(e, "timestamp"))
        })
        .collect()
}

#[test]
fn with_the_heads_a_real_gunshot_or_glass_break_at_10_db_in_speech_starts_its_event_alone() {
    for (file, group, label) in [
        ("gunshot__freesound__1.wav", "gunshot", "head/gunshot"),
        ("glass_breaking__infineon__1.wav", "glass", "head/glass"),
    ] {
        let audio = in_speech(&load(file), 10.0);
        let events = summary(&head_events(&audio, SECURITY));
        let starts: Vec<_> = events.iter().filter(|e| e.0 == "start").collect();
        assert_eq!(starts.len(), 1, "{file}: {events:?}");
        assert_eq!(starts[0].1, group, "{file}: {events:?}");
        assert!((3.5..=4.6).contains(&starts[0].2), "{file}: {events:?}");
        let alone = head_events(&audio, group);
        let start = alone.iter().find(|e| kind(e).0 == "start").unwrap();
        assert_eq!(common::strings(start, "labels"), [label]);
    }
}

/// Fireworks recordings the heads never heard, the held-out ones of the training split, one
/// after another with a second of silence between them.
fn held_out_fireworks() -> Vec<f32> {
    let split_path = std::path::Path::new(&heads_model()).with_extension("split.json");
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&split_path).unwrap()).unwrap();
    let train = common::shared_audio().join("../train");
    let clips: Vec<_> = split["validation_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .filter(|f| f.starts_with("fireworks/"))
        .take(12)
        .collect();
    assert!(clips.len() >= 6, "{clips:?}");
    let mut audio = vec![0.0f32; RATE as usize];
    for clip in &clips {
        audio.extend(load_path(&train.join(clip)));
        audio.extend(std::iter::repeat_n(0.0, RATE as usize));
    }
    audio
}

#[test]
fn with_the_heads_fireworks_start_no_gunshot() {
    let events = summary(&head_events(&held_out_fireworks(), SECURITY));
    assert!(events.iter().all(|e| e.1 != "gunshot"), "{events:?}");
}

#[test]
fn windows_carry_their_level_and_quiet_windows_skip_the_model() {
    // 2 s of a 1 kHz sine at half scale, then 2 s of digital silence.
    let mut audio: Vec<f32> = (0..2 * RATE)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / RATE as f32).sin())
        .collect();
    audio.extend(std::iter::repeat_n(0.0, 2 * RATE as usize));
    let run = |props: &[(&str, &str)]| {
        let mut h = harness(props);
        let mut pts = gst::ClockTime::ZERO;
        push(&mut h, &audio, &mut pts);
        messages(&h).0
    };
    let windows = run(&[("full-scores", "true")]);
    assert_eq!(windows.len(), 7);
    // A sine of amplitude a has an RMS of a/√2: 20·log10(0.5/√2) = -9.03 dBFS; peak -6.02.
    let tone = &windows[0];
    assert!((tone.get::<f64>("rms-db").unwrap() + 9.031).abs() < 0.01);
    assert!((tone.get::<f64>("peak-db").unwrap() + 6.021).abs() < 0.01);
    assert!((tone.get::<f64>("short-term-db").unwrap() + 9.031).abs() < 0.05);
    assert!(!tone.get::<bool>("quiet").unwrap());
    assert!(!common::strings(tone, "labels").is_empty());
    // Windows 5 and 6 (2.40 s on) hold only silence: quiet, no labels, no scores.
    for w in &windows[5..] {
        assert!(w.get::<bool>("quiet").unwrap());
        assert_eq!(w.get::<f64>("rms-db").unwrap(), -200.0);
        assert!(common::strings(w, "labels").is_empty());
        assert!(!w.has_field("full-scores"));
    }
    // Not even a threshold of 0 lists classes for a quiet window.
    let windows = run(&[("threshold", "0")]);
    assert!(common::strings(&windows[6], "labels").is_empty());
    assert_eq!(common::strings(&windows[0], "labels").len(), 5);
    // With the gate off the model hears the silence.
    let windows = run(&[("min-level", "-200")]);
    assert!(windows.iter().all(|w| !w.get::<bool>("quiet").unwrap()));
    assert_eq!(common::strings(&windows[6], "labels")[0], "Silence");
}

#[test]
fn watch_changes_while_playing_open_and_close_events() {
    let quiet = noise(3 * RATE as usize, 0.001, 1);
    let loud = noise(RATE as usize, 0.3, 2);
    let mut h = harness(&[]);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &quiet, &mut pts);
    push(&mut h, &loud, &mut pts);
    assert!(messages(&h).1.is_empty(), "nothing watched, nothing posted");
    let tagger = h.element().unwrap();
    // Night profile: the loudness trigger on.
    tagger.set_property("watch", "loud");
    push(&mut h, &quiet, &mut pts);
    push(&mut h, &loud, &mut pts);
    let (_, events) = messages(&h);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(kind(&events[0]), ("start".into(), "loud".into()));
    let onset = seconds(&events[0], "timestamp");
    assert!((6.5..=7.1).contains(&onset), "{onset}");
    // Off watch while the sound goes on: the open event stops, saying why.
    tagger.set_property("watch", "");
    push(&mut h, &loud, &mut pts);
    let (_, events) = messages(&h);
    assert_eq!(kind(&events[0]), ("stop".into(), "loud".into()));
    assert_eq!(events[0].get::<String>("reason").unwrap(), "unwatched");
    // Back on, and EOS closes what is open.
    tagger.set_property("watch", "loud");
    push(&mut h, &quiet, &mut pts);
    push(&mut h, &loud, &mut pts);
    h.push_event(gst::event::Eos::new());
    let (_, events) = messages(&h);
    let summary: Vec<_> = events.iter().map(|e| kind(e)).collect();
    assert_eq!(
        summary,
        [
            ("start".into(), "loud".into()),
            ("stop".into(), "loud".into())
        ]
    );
    assert_eq!(events[1].get::<String>("reason").unwrap(), "eos");
}

#[test]
fn a_flush_stops_open_events() {
    let mut h = harness(&[("watch", "loud")]);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &noise(2 * RATE as usize, 0.001, 3), &mut pts);
    push(&mut h, &noise(RATE as usize, 0.3, 4), &mut pts);
    assert_eq!(messages(&h).1.len(), 1);
    h.push_event(gst::event::FlushStart::new());
    h.push_event(gst::event::FlushStop::new(true));
    let (_, events) = messages(&h);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(kind(&events[0]), ("stop".into(), "loud".into()));
    assert_eq!(events[0].get::<String>("reason").unwrap(), "flush");
}

#[test]
fn a_user_preset_adds_groups_and_can_change_while_playing() {
    let dir = std::env::temp_dir().join(format!("audiotagger-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let beep = dir.join("beep.toml");
    std::fs::write(
        &beep,
        "[group.beep]\nclasses = [\"Beep, bleep\", \"Sine wave\"]\non-threshold = 0.2\n",
    )
    .unwrap();
    let tone: Vec<f32> = (0..3 * RATE)
        .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / RATE as f32).sin())
        .collect();
    let mut h = harness(&[("event-preset", beep.to_str().unwrap()), ("watch", "beep")]);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &tone, &mut pts);
    let (_, events) = messages(&h);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(kind(&events[0]), ("start".into(), "beep".into()));
    assert_eq!(seconds(&events[0], "timestamp"), 0.0);
    // A preset that cannot be read while playing: a warning, and the groups stay.
    let tagger = h.element().unwrap();
    tagger.set_property("event-preset", dir.join("missing.toml").to_str().unwrap());
    push(&mut h, &tone, &mut pts);
    let bus = tagger.bus().unwrap();
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("missing.toml"),
        "{}",
        w.error()
    );
    h.push_event(gst::event::Eos::new());
    let (_, events) = messages(&h);
    assert_eq!(kind(&events[0]), ("stop".into(), "beep".into()));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starting an element with `props` fails with an error from it that contains `needle`.
fn assert_start_error_names(props: &str, needle: &str) {
    let (err, source) = common::expect_start_error(&format!(
        "audiotestsrc num-buffers=5 ! audiotagger name=tagger {props} ! fakesink"
    ));
    assert_eq!(source, "tagger");
    assert!(err.to_string().contains(needle), "{props}: {err}");
}

#[test]
fn bad_event_configuration_fails_at_start_naming_the_cause() {
    let dir = std::env::temp_dir().join(format!("audiotagger-badpreset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unknown_class = dir.join("cat.toml");
    std::fs::write(
        &unknown_class,
        "[group.cat]\nclasses = [\"Meowing loudly\"]\n",
    )
    .unwrap();
    let not_toml = dir.join("broken.toml");
    std::fs::write(&not_toml, "[group.cat\nclasses = ").unwrap();
    for (props, needle) in [
        ("watch=gunshot,lasers".to_string(), "lasers"),
        (
            "event-preset=/nonexistent/night.toml watch=gunshot".into(),
            "/nonexistent/night.toml",
        ),
        (
            format!("event-preset={} watch=cat", unknown_class.display()),
            "Meowing loudly",
        ),
        (
            format!("event-preset={}", not_toml.display()),
            "broken.toml",
        ),
    ] {
        assert_start_error_names(&props, needle);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The second-look model.
fn second_model() -> String {
    built_model("ced-tiny.onnx")
}

/// The event messages and the rejected count with a second look, in `mode`.
fn looked_events(audio: &[f32], watch: &str, mode: &str) -> (Vec<gst::Structure>, u64) {
    let second = second_model();
    events_and_rejected(
        audio,
        &[("watch", watch), ("second-model", &second), ("mode", mode)],
    )
}

/// The event messages, and the candidates the second look rejected, of an element with `props`
/// on `audio` to its end.
fn events_and_rejected(audio: &[f32], props: &[(&str, &str)]) -> (Vec<gst::Structure>, u64) {
    let mut h = harness(props);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, audio, &mut pts);
    h.push_event(gst::event::Eos::new());
    let rejected = h.element().unwrap().property::<u64>("looks-rejected");
    (messages(&h).1, rejected)
}

#[test]
fn a_second_look_confirms_a_real_glass_break_in_speech_keeping_the_first_onset() {
    let glass = load("glass_breaking__infineon__2.wav");
    let inserted = 4.0..4.0 + glass.len() as f64 / RATE as f64;
    let audio = in_speech(&glass, 10.0);
    for mode in ["blocking", "queued", "live"] {
        let (events, _) = looked_events(&audio, "glass", mode);
        let found = summary(&events);
        assert_eq!(found.len(), 2, "{mode}: {found:?}");
        assert_eq!(
            (found[0].0.as_str(), found[0].1.as_str()),
            ("start", "glass")
        );
        assert!(inserted.contains(&found[0].2), "{mode}: {found:?}");
        let start = &events[0];
        let score = start.get::<f64>("confirm-score").unwrap();
        assert!(score > 0.0 && score <= 1.0, "{score}");
        let labels = common::strings(start, "confirm-labels");
        assert!(
            labels.iter().all(|l| [
                "Glass",
                "Shatter",
                "Breaking",
                "Smash, crash",
                "Chink, clink"
            ]
            .contains(&l.as_str())),
            "{labels:?}"
        );
        assert!(start.get::<gst::ClockTime>("decision-latency").is_ok());
        assert_eq!(found[1].0, "stop");
    }
}

#[test]
fn in_live_mode_the_verdict_is_posted_without_waiting_for_another_buffer() {
    let second = second_model();
    let mut h = harness(&[
        ("watch", "glass"),
        ("second-model", &second),
        ("mode", "live"),
    ]);
    let audio = in_speech(&load("glass_breaking__infineon__2.wav"), 10.0);
    // Up to 7.5 s: the candidate (onset 5.3 s) has its look's audio, and then nothing more comes.
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &audio[..75 * RATE as usize / 10], &mut pts);
    let bus = h.element().unwrap().bus().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let start = loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Element],
        );
        if let Some(s) = msg.as_ref().and_then(|m| m.structure())
            && s.name() == "audiotagger-event"
        {
            break s.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no start without EOS");
    };
    assert_eq!(kind(&start), ("start".into(), "glass".into()));
    assert!(start.get::<f64>("confirm-score").is_ok());
}

#[test]
fn near_the_end_of_a_stream_a_candidate_gets_the_audio_there_is() {
    // The stream ends about 0.7 s after the glass break's onset (5.3 s): its look cannot have
    // the 2 s after the onset it would get mid-stream.
    let mut audio = in_speech(&load("glass_breaking__infineon__2.wav"), 10.0);
    audio.truncate(6 * RATE as usize);
    let (events, _) = looked_events(&audio, "glass", "blocking");
    let found = summary(&events);
    assert_eq!(
        found.first().map(|e| e.0.as_str()),
        Some("start"),
        "{found:?}"
    );
    assert!(events[0].get::<f64>("confirm-score").is_ok());
}

#[test]
fn a_flush_drops_a_candidate_still_waiting_for_its_look() {
    let second = second_model();
    let mut h = harness(&[("watch", "glass"), ("second-model", &second)]);
    let audio = in_speech(&load("glass_breaking__infineon__2.wav"), 10.0);
    // The candidate's onset is at 5.3 s; its look needs the audio up to 6.8 s.
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &audio[..6 * RATE as usize], &mut pts);
    h.push_event(gst::event::FlushStart::new());
    h.push_event(gst::event::FlushStop::new(true));
    // A new stream of speech alone: a candidate kept over the flush would get its look here
    // and be confirmed or rejected.
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    let mut pts = gst::ClockTime::ZERO;
    push(
        &mut h,
        &load("long/speech__asterisk__2.wav")[..10 * RATE as usize],
        &mut pts,
    );
    h.push_event(gst::event::Eos::new());
    let found = summary(&messages(&h).1);
    assert!(found.is_empty(), "{found:?}");
    let rejected = h.element().unwrap().property::<u64>("looks-rejected");
    assert_eq!(rejected, 0, "the dropped candidate was looked at");
}

/// The event messages and the rejected count with trained heads in both stages:
/// `yamnet-heads.onnx` proposes, `ced-tiny-heads.onnx` confirms on its own heads (the preset's
/// `[group.NAME.look.head]`).
fn heads_looked_events(audio: &[f32], watch: &str) -> (Vec<gst::Structure>, u64) {
    let (first, second) = (heads_model(), built_model("ced-tiny-heads.onnx"));
    events_and_rejected(
        audio,
        &[
            ("model", &first),
            ("second-model", &second),
            ("watch", watch),
        ],
    )
}

#[test]
fn with_heads_in_both_stages_a_real_gunshot_or_glass_break_at_10_db_in_speech_starts_its_event_alone()
 {
    let mut looked = 0;
    for (file, group, label) in [
        ("gunshot__freesound__1.wav", "gunshot", "head/gunshot"),
        ("glass_breaking__infineon__1.wav", "glass", "head/glass"),
    ] {
        let audio = in_speech(&load(file), 10.0);
        let (events, _) = heads_looked_events(&audio, SECURITY);
        let found = summary(&events);
        let starts: Vec<_> = events.iter().filter(|e| kind(e).0 == "start").collect();
        assert_eq!(starts.len(), 1, "{file}: {found:?}");
        assert_eq!(kind(starts[0]).1, group, "{file}: {found:?}");
        assert!(
            (3.5..=4.6).contains(&seconds(starts[0], "timestamp")),
            "{file}: {found:?}"
        );
        // A look judged it on the second model's head, not on its AudioSet classes; a head
        // score above the look's pass threshold needs no look.
        if starts[0].has_field("confirm-labels") {
            assert_eq!(
                common::strings(starts[0], "confirm-labels"),
                [label],
                "{file}"
            );
            looked += 1;
        }
    }
    assert!(looked > 0, "neither event was looked at");
}

#[test]
fn with_a_second_look_fireworks_start_no_gunshot_and_candidates_are_counted() {
    // The heads propose gunshots in fireworks; CED-Tiny's heads turn them down.
    let (events, rejected) = heads_looked_events(&held_out_fireworks(), "gunshot");
    let found = summary(&events);
    assert!(found.iter().all(|e| e.1 != "gunshot"), "{found:?}");
    assert!(rejected > 0, "the first stage proposed nothing to reject");
}

#[test]
fn a_bad_second_model_or_look_fails_at_start_naming_the_cause() {
    let dir = std::env::temp_dir().join(format!("audiotagger-badlook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_look = dir.join("look.toml");
    std::fs::write(
        &bad_look,
        "[group.bark]\nclasses = [\"Bark\"]\n[group.bark.look]\nclasses = [\"Woof woof\"]\n\
         confirm-threshold = 0.3\n",
    )
    .unwrap();
    let yamnet = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yamnet.onnx");
    for (props, needle) in [
        (
            format!("second-model={} watch=glass", yamnet.display()),
            "waveform",
        ),
        (
            format!(
                "second-model={} event-preset={} watch=bark",
                second_model(),
                bad_look.display()
            ),
            "'Woof woof' is not a class of the second model",
        ),
        (
            "second-model=/nonexistent/ced.onnx watch=glass".into(),
            "/nonexistent/ced.onnx",
        ),
        (
            format!(
                "second-model={} watch=glass",
                built_model("efficientat-mn04.onnx")
            ),
            "takes log-mel features, not audio",
        ),
    ] {
        assert_start_error_names(&props, needle);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn results_also_go_downstream_in_band_in_the_order_they_are_posted_before_the_eos() {
    let shot = load("gunshot__freesound__1.wav");
    let mix = in_speech(&shot, 20.0);
    let mut h = harness(&[("watch", "gunshot,speech"), ("name", "tagger")]);
    let mut pts = gst::ClockTime::ZERO;
    push(&mut h, &mix, &mut pts);
    h.push_event(gst::event::Eos::new());
    let element = h.element().unwrap();
    let posted: Vec<gst::Structure> = std::iter::from_fn(|| {
        element
            .bus()
            .unwrap()
            .pop_filtered(&[gst::MessageType::Element])
    })
    .filter_map(|m| m.structure().map(|s| s.to_owned()))
    .collect();
    let mut inband = Vec::new();
    let mut eos_after_results = false;
    while let Some(event) = h.try_pull_event() {
        match event.view() {
            gst::EventView::CustomDownstream(e) => {
                assert!(!eos_after_results, "a result after the EOS");
                inband.push(e.structure().unwrap().to_owned());
            }
            gst::EventView::Eos(_) => eos_after_results = true,
            _ => {}
        }
    }
    assert!(eos_after_results);
    assert!(posted.iter().any(|s| s.name() == "audiotagger-event"));
    assert_eq!(inband.len(), posted.len());
    for (sent, bus) in inband.iter().zip(&posted) {
        assert_eq!(sent.get::<&str>("element").unwrap(), "tagger");
        let mut without = sent.clone();
        without.remove_field("element");
        assert_eq!(&without, bus);
    }
}
