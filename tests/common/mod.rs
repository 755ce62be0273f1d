// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

pub mod broker;

use gst::prelude::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstaudiotagger::plugin_register_static().expect("audiotagger plugin registers");
    });
}

/// This process's resident memory (`VmRSS`), KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Interleaved F32LE mono caps at `rate`.
pub fn f32_mono_caps(rate: i32) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", rate)
        .field("channels", 1)
        .field("layout", "interleaved")
        .build()
}

/// A harness around one `audiotagger` with `props` set (in order), its own bus, and F32LE mono
/// caps at `rate` on both sides.
pub fn tagger_harness(rate: i32, props: &[(&str, &str)]) -> gst_check::Harness {
    init();
    // Set before the harness starts the element: the model, sessions, threads and provider
    // are read when it starts, and a start-up warning needs the bus.
    let element = gst::ElementFactory::make("audiotagger").build().unwrap();
    for (k, v) in props {
        element.set_property_from_str(k, v);
    }
    element.set_bus(Some(&gst::Bus::new()));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    // Tests push audio as fast as they can, as a file source does; a harness reports itself
    // live unless told, which would make `mode=auto` skip windows a slow machine cannot keep
    // up with.
    h.set_live(false);
    h.set_caps(f32_mono_caps(rate), f32_mono_caps(rate));
    h
}

/// A deterministic pseudo-random byte stream (xorshift), so failures reproduce.
pub fn noise_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn shared_audio() -> PathBuf {
    // The same override scripts/setup.sh takes, so a bench binary can run on a machine where
    // the checkout is elsewhere.
    match std::env::var_os("AUDIOTAGGER_SHARED") {
        Some(dir) => PathBuf::from(dir).join("audio"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio"),
    }
}

/// One row of ../shared/audio/manifest.csv: the file and the AudioSet classes that count.
pub struct Clip {
    pub file: PathBuf,
    pub label: String,
    pub classes: Vec<String>,
}

/// The three labels of the highest `scores`, highest first.
pub fn top3(scores: &[f64], labels: &[String]) -> Vec<String> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx[..3].iter().map(|&i| labels[i].clone()).collect()
}

pub fn manifest() -> Vec<Clip> {
    let text = std::fs::read_to_string(shared_audio().join("manifest.csv"))
        .expect("../shared/audio/manifest.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let fields = csv_fields(line);
            Clip {
                file: shared_audio().join(&fields[0]),
                label: fields[1].clone(),
                classes: fields[2].split(';').map(String::from).collect(),
            }
        })
        .collect()
}

fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match (c, quoted) {
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

pub fn strings(s: &gst::StructureRef, field: &str) -> Vec<String> {
    s.get::<gst::Array>(field)
        .unwrap()
        .iter()
        .map(|v| v.get::<String>().unwrap())
        .collect()
}

pub fn floats(s: &gst::StructureRef, field: &str) -> Vec<f64> {
    s.get::<gst::Array>(field)
        .unwrap()
        .iter()
        .map(|v| v.get::<f64>().unwrap())
        .collect()
}

/// Runs `description` to EOS and returns every `audiotagger` message structure, in order.
pub fn run_pipeline(description: &str) -> Vec<gst::Structure> {
    let pipeline = gst::parse::launch(description).unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let out = window_messages(&bus, gst::ClockTime::from_seconds(120), description);
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// The `audiotagger` window messages on `bus` up to EOS (or `timeout` without a message); an
/// error message panics, naming `what`.
pub fn window_messages(
    bus: &gst::Bus,
    timeout: impl Into<Option<gst::ClockTime>>,
    what: &str,
) -> Vec<gst::Structure> {
    let mut out = Vec::new();
    for msg in bus.iter_timed(timeout) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "audiotagger") {
                    out.push(s.to_owned());
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{what}: {} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    out
}

/// The pipeline `description`, which ends in an `appsink name=sink`, and that sink.
pub fn launch_to_appsink(description: &str) -> (gst::Pipeline, gst_app::AppSink) {
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    (pipeline, sink)
}

/// `path` decoded, downmixed and resampled by GStreamer itself to F32 at `rate` × `channels`.
pub fn decode_f32(path: &Path, rate: i32, channels: i32) -> Vec<f32> {
    let (pipeline, sink) = launch_to_appsink(&format!(
        "filesrc location=\"{}\" ! decodebin ! audioconvert ! audioresample ! \
         audio/x-raw,format=F32LE,rate={rate},channels={channels} ! appsink name=sink sync=false",
        path.display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        out.extend(
            map.as_slice()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
        );
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Every recording in ../shared/audio/long (16 min of speech and music), in name order, decoded
/// to mono at `rate` and concatenated.
pub fn long_recordings(rate: i32) -> Vec<f32> {
    long_files()
        .iter()
        .flat_map(|f| decode_f32(f, rate, 1))
        .collect()
}

/// The WAV files of ../shared/audio/long, in name order.
pub fn long_files() -> Vec<PathBuf> {
    let dir = shared_audio().join("long");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    files
}

/// YAMNet's 521 display names, in class order, from ../shared/models/yamnet_class_map.csv.
pub fn yamnet_labels() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/yamnet_class_map.csv");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| csv_fields(l)[2].clone())
        .collect()
}

/// Starts `description`, which must fail, and returns its error and the name of the element
/// that posted it (an error message, not a panic or a hang).
pub fn expect_start_error(description: &str) -> (gst::glib::Error, String) {
    init();
    let pipeline = gst::parse::launch(description).unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .unwrap_or_else(|| panic!("{description}: no error message"));
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    let source = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
    (e.error(), source)
}

/// A buffer of F32LE samples at `pts`.
pub fn f32_buffer(samples: &[f32], pts: Option<gst::ClockTime>) -> gst::Buffer {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut buf = gst::Buffer::from_mut_slice(bytes);
    buf.get_mut().unwrap().set_pts(pts);
    buf
}

pub fn samples_to_time(samples: u64, rate: u64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(samples * 1_000_000_000 / rate)
}

/// Pushes `samples` in `block`-sample buffers from sample `start`, checking that every buffer
/// comes out with the same bytes and timestamp.
pub fn push_checked(
    h: &mut gst_check::Harness,
    samples: &[f32],
    block: usize,
    start: u64,
    rate: u64,
) {
    let mut at = start;
    for chunk in samples.chunks(block) {
        let input = f32_buffer(chunk, Some(samples_to_time(at, rate)));
        let expected = input.map_readable().unwrap().as_slice().to_vec();
        h.push(input).unwrap();
        let out = h.pull().unwrap();
        assert_eq!(out.pts(), Some(samples_to_time(at, rate)));
        assert!(
            out.map_readable().unwrap().as_slice() == expected.as_slice(),
            "audio changed at sample {at}"
        );
        at += chunk.len() as u64;
    }
}

/// Drains the element's bus: (audiotagger window messages, warnings, errors).
pub fn drain_bus(h: &gst_check::Harness) -> (Vec<gst::Structure>, Vec<String>, Vec<String>) {
    let bus = h.element().unwrap().bus().unwrap();
    let (mut windows, mut warnings, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(m) = bus.pop() {
        match m.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "audiotagger") {
                    windows.push(s.to_owned());
                }
            }
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => errors.push(e.error().to_string()),
            _ => {}
        }
    }
    (windows, warnings, errors)
}
