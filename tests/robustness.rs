// SPDX-License-Identifier: MPL-2.0
//! Robustness: bad samples, odd buffers, bad configuration and state churn. In every case the
//! audio passes through bit-exact with its timestamps, and a user's mistake ends as an error or
//! warning that names the cause, never a panic.

mod common;

use std::path::{Path, PathBuf};

use gst::prelude::*;

const RATE: u64 = 16000;

/// Every test here checks all 521 scores, so `full-scores` is on; and reads each buffer's
/// results as soon as it is pushed, which `blocking` reports before the push returns.
fn harness(props: &[(&str, &str)]) -> gst_check::Harness {
    let props: Vec<_> = [("full-scores", "true"), ("mode", "blocking")]
        .iter()
        .chain(props)
        .copied()
        .collect();
    common::tagger_harness(RATE as i32, &props)
}

fn buffer(samples: &[f32], pts: Option<gst::ClockTime>) -> gst::Buffer {
    common::f32_buffer(samples, pts)
}

fn ns(samples: u64) -> gst::ClockTime {
    common::samples_to_time(samples, RATE)
}

fn push_checked(h: &mut gst_check::Harness, samples: &[f32], block: usize, start: u64) {
    common::push_checked(h, samples, block, start, RATE);
}

fn drain(h: &gst_check::Harness) -> (Vec<gst::Structure>, Vec<String>, Vec<String>) {
    common::drain_bus(h)
}

fn timestamps(windows: &[gst::Structure]) -> Vec<(u64, bool)> {
    windows
        .iter()
        .map(|w| {
            (
                w.get::<gst::ClockTime>("timestamp").unwrap().nseconds(),
                w.get::<bool>("partial").unwrap(),
            )
        })
        .collect()
}

fn sine(n: usize, freq: f64, amplitude: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / RATE as f64).sin() as f32
        })
        .collect()
}

#[test]
fn bad_samples_pass_through_bit_exact_and_every_score_stays_finite() {
    let second = RATE as usize;
    let mut audio = Vec::new();
    // NaN inside a tone, ±Inf, denormals, clipping far past full scale, DC, digital silence.
    let mut nan = sine(second, 440.0, 0.3);
    nan[100..400].fill(f32::NAN);
    audio.extend(nan);
    audio.extend((0..second).map(|i| {
        if i % 2 == 0 {
            f32::INFINITY
        } else {
            f32::NEG_INFINITY
        }
    }));
    audio.extend((0..second).map(|i| if i % 2 == 0 { 1e-40 } else { -1e-42 }));
    audio.extend(sine(second, 220.0, 3.0).iter().map(|v| v.clamp(-1.5, 1.5)));
    audio.extend(sine(second, 440.0, 0.1).iter().map(|v| v + 0.5));
    audio.extend(vec![0.0; second]);
    let mut h = harness(&[("min-level", "-200")]);
    push_checked(&mut h, &audio, 1600, 0);
    h.push_event(gst::event::Eos::new());
    let (windows, warnings, errors) = drain(&h);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings.iter().filter(|w| w.contains("NaN")).count(),
        1,
        "one warning for non-finite input: {warnings:?}"
    );
    // 6 s: 11 complete windows every 0.48 s, and the tail in one padded window at EOS.
    let stamps = timestamps(&windows);
    assert_eq!(stamps.len(), 12);
    for (i, &(t, partial)) in stamps.iter().enumerate() {
        assert_eq!(t, i as u64 * 480_000_000);
        assert_eq!(partial, i == 11, "window {i}");
    }
    for w in &windows {
        let scores = common::floats(w, "full-scores");
        assert_eq!(scores.len(), 521);
        assert!(
            scores
                .iter()
                .all(|s| s.is_finite() && (0.0..=1.0).contains(s))
        );
        assert!(w.get::<f64>("rms-db").unwrap().is_finite());
    }
}

#[test]
fn one_sample_buffers_give_the_results_of_one_big_buffer() {
    let audio = sine(RATE as usize * 3 / 2, 1000.0, 0.4);
    let mut small = harness(&[]);
    push_checked(&mut small, &audio, 1, 0);
    let mut big = harness(&[]);
    push_checked(&mut big, &audio, audio.len(), 0);
    let (a, _, ea) = drain(&small);
    let (b, _, eb) = drain(&big);
    assert!(ea.is_empty() && eb.is_empty());
    assert_eq!(timestamps(&a), timestamps(&b));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (
            common::floats(x, "full-scores"),
            common::floats(y, "full-scores"),
        );
        let worst = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{worst}");
    }
}

#[test]
fn samples_at_an_unaligned_address_give_the_results_of_aligned_ones() {
    let audio = sine(RATE as usize * 3 / 2, 1000.0, 0.4);
    let mut aligned = harness(&[]);
    aligned
        .push(buffer(&audio, Some(gst::ClockTime::ZERO)))
        .unwrap();
    // The same samples one byte into their memory: no f32 can be read from there in place.
    let mut bytes = vec![0u8];
    bytes.extend(audio.iter().flat_map(|s| s.to_le_bytes()));
    let whole = gst::Buffer::from_mut_slice(bytes);
    let mut shifted = whole
        .copy_region(gst::BufferCopyFlags::MEMORY, 1..)
        .unwrap();
    shifted.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    let address = shifted.map_readable().unwrap().as_ptr() as usize;
    assert_ne!(
        address % 4,
        0,
        "the test needs memory f32 cannot be read from in place"
    );
    let mut unaligned = harness(&[]);
    unaligned.push(shifted).unwrap();
    aligned.push_event(gst::event::Eos::new());
    unaligned.push_event(gst::event::Eos::new());
    let (a, _, ea) = drain(&aligned);
    let (b, _, eb) = drain(&unaligned);
    assert!(ea.is_empty() && eb.is_empty(), "{ea:?} {eb:?}");
    assert_eq!(a.len(), 3);
    assert_eq!(timestamps(&a), timestamps(&b));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            common::floats(x, "full-scores"),
            common::floats(y, "full-scores")
        );
    }
}

#[test]
fn a_ten_minute_buffer_is_tagged_whole() {
    let n = RATE as usize * 600;
    let mut audio = sine(n, 700.0, 0.2);
    for (i, v) in audio.iter_mut().enumerate() {
        *v += ((i * 7919) % 1000) as f32 * 1e-4 - 0.05;
    }
    let mut h = harness(&[]);
    push_checked(&mut h, &audio, n, 0);
    let (windows, _, errors) = drain(&h);
    assert!(errors.is_empty(), "{errors:?}");
    // Complete windows start every 0.48 s while 0.975 s fits: k <= (600 - 0.975) / 0.48, so
    // 1248 of them, the last at 598.56 s.
    let stamps = timestamps(&windows);
    assert_eq!(stamps.len(), 1248);
    assert_eq!(stamps.last().unwrap().0, 598_560_000_000);
}

#[test]
fn buffers_without_timestamps_are_timed_by_their_samples() {
    let mut h = harness(&[]);
    let audio = sine(RATE as usize * 2, 300.0, 0.3);
    for chunk in audio.chunks(1600) {
        h.push(buffer(chunk, None)).unwrap();
        let out = h.pull().unwrap();
        assert_eq!(out.pts(), None, "no timestamp is invented on the audio");
    }
    let (windows, _, errors) = drain(&h);
    assert!(errors.is_empty());
    let stamps: Vec<u64> = timestamps(&windows).iter().map(|t| t.0).collect();
    assert_eq!(stamps, vec![0, 480_000_000, 960_000_000]);
}

#[test]
fn gaps_and_discont_close_the_run_and_restart_at_the_new_time() {
    let mut h = harness(&[]);
    let piece = sine(RATE as usize * 6 / 5, 500.0, 0.3); // 1.2 s
    push_checked(&mut h, &piece, 1600, 0);
    // A 10 s jump: the first run ends with its padded tail, the next starts at 10 s.
    push_checked(&mut h, &piece, 1600, 10 * RATE);
    // DISCONT on a contiguous timestamp also restarts.
    let mut flagged = buffer(&piece, Some(ns(10 * RATE + piece.len() as u64)));
    flagged
        .get_mut()
        .unwrap()
        .set_flags(gst::BufferFlags::DISCONT);
    h.push(flagged).unwrap();
    h.push_event(gst::event::Eos::new());
    let (windows, _, errors) = drain(&h);
    assert!(errors.is_empty());
    let s = |sec: f64| (sec * 1e9).round() as u64;
    assert_eq!(
        timestamps(&windows),
        vec![
            (0, false),
            (s(0.48), true),
            (s(10.0), false),
            (s(10.48), true),
            (s(11.2), false),
            (s(11.68), true),
        ]
    );
}

#[test]
fn a_flushing_seek_restarts_tagging_at_the_new_position() {
    common::init();
    let file = common::shared_audio().join("long/speech__asterisk__3.wav");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! audioconvert ! audiotagger ! fakesink sync=false",
        file.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    assert!(pipeline.state(gst::ClockTime::from_seconds(10)).0.is_ok());
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_seconds(20),
        )
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut stream_times = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "audiotagger") {
                    stream_times.push(
                        s.get::<gst::ClockTime>("stream-time")
                            .unwrap()
                            .seconds_f64(),
                    );
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // Windows before the seek may have been posted during preroll; after it, the first window
    // is at 20 s and they continue every 0.48 s.
    let after: Vec<f64> = stream_times.into_iter().skip_while(|&t| t < 19.9).collect();
    assert!(after.len() > 10, "{after:?}");
    assert!((after[0] - 20.0).abs() < 1e-3, "{after:?}");
    for pair in after.windows(2) {
        assert!(
            (pair[1] - pair[0] - 0.48).abs() < 1e-3 || pair[1] < pair[0] + 0.48,
            "{pair:?}"
        );
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audiotagger-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yamnet.onnx")
}

fn start_error_for(model: &Path) -> String {
    common::expect_start_error(&format!(
        "audiotestsrc num-buffers=5 ! audiotagger model=\"{}\" ! fakesink",
        model.display()
    ))
    .0
    .to_string()
}

#[test]
fn a_truncated_model_is_an_error_naming_the_file() {
    let dir = temp_dir("truncated");
    let bytes = std::fs::read(model()).unwrap();
    let cut = dir.join("half.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let text = start_error_for(&cut);
    assert!(
        text.contains("half.onnx") && text.contains("ONNX model"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_descriptor_that_does_not_fit_the_model_fails_at_start() {
    let dir = temp_dir("descriptor");
    let copy = dir.join("m.onnx");
    std::fs::copy(model(), &copy).unwrap();
    let sidecar = |json: &str| std::fs::write(dir.join("m.onnx.json"), json).unwrap();
    // A waveform descriptor on a log-mel model: the input shape cannot take it.
    sidecar(r#"{"audiotagger.input_kind": "waveform", "audiotagger.window_samples": 16000}"#);
    let text = start_error_for(&copy);
    assert!(text.contains("shape") && text.contains("16000"), "{text}");
    // Ten labels for a model with 521 scores.
    let labels: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let list = serde_json::to_string(&labels).unwrap();
    sidecar(&format!(
        r#"{{"audiotagger.labels": {list}, "audiotagger.label_ids": {list}, "audiotagger.num_classes": 10}}"#
    ));
    let text = start_error_for(&copy);
    assert!(
        text.contains("521 classes") && text.contains("10 labels"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn invalid_property_values_are_refused_when_set() {
    common::init();
    // Names that are not values of an enum fail the launch line outright.
    for bad in ["smoothing=bogus", "execution-provider=npu"] {
        let result = gst::parse::launch(&format!("audiotestsrc ! audiotagger {bad} ! fakesink"));
        assert!(result.is_err(), "{bad} was accepted");
    }
    // Out-of-range numbers on a launch line are refused by GObject (it logs which property and
    // why) and the property keeps its default.
    let defaults = gst::ElementFactory::make("audiotagger").build().unwrap();
    for (property, bad) in [
        ("threshold", "2"),
        ("top-k", "-1"),
        ("on-threshold", "1.5"),
        ("min-level", "5"),
    ] {
        let line = format!("audiotestsrc ! audiotagger name=t {property}={bad} ! fakesink");
        let Ok(pipeline) = gst::parse::launch(&line) else {
            continue; // refused outright is fine too
        };
        let tagger = pipeline
            .downcast::<gst::Pipeline>()
            .unwrap()
            .by_name("t")
            .unwrap();
        assert_eq!(
            format!("{:?}", tagger.property_value(property)),
            format!("{:?}", defaults.property_value(property)),
            "{property}={bad} was accepted"
        );
    }
}

#[test]
fn sixty_four_elements_in_one_process() {
    common::init();
    let pipelines: Vec<gst::Element> = (0..64)
        .map(|i| {
            gst::parse::launch(&format!(
                "audiotestsrc num-buffers=30 samplesperbuffer=1600 freq={} ! \
                 audio/x-raw,rate=16000 ! audiotagger ! fakesink sync=false",
                200 + 10 * i
            ))
            .unwrap()
        })
        .collect();
    for p in &pipelines {
        p.set_state(gst::State::Playing).unwrap();
    }
    for p in &pipelines {
        let windows = common::window_messages(
            &p.bus().unwrap(),
            gst::ClockTime::from_seconds(120),
            "64 elements",
        );
        // 3 s each: 5 complete windows and the padded tail.
        assert_eq!(windows.len(), 6);
        p.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn the_model_can_change_between_runs() {
    common::init();
    let dir = temp_dir("change");
    let bogus = dir.join("bogus.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let copy = dir.join("copy.onnx");
    std::fs::copy(model(), &copy).unwrap();
    let pipeline = gst::parse::launch(
        "audiotestsrc num-buffers=20 samplesperbuffer=1600 ! audio/x-raw,rate=16000 ! \
         audiotagger name=t ! fakesink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let tagger = pipeline.by_name("t").unwrap();
    let run = |model: &Path| -> Result<usize, String> {
        tagger.set_property("model", model.to_str().unwrap());
        pipeline.set_state(gst::State::Playing).ok();
        let mut windows = 0;
        let mut result = Err("no EOS".to_string());
        for msg in pipeline
            .bus()
            .unwrap()
            .iter_timed(gst::ClockTime::from_seconds(30))
        {
            match msg.view() {
                gst::MessageView::Element(_) => windows += 1,
                gst::MessageView::Eos(_) => {
                    result = Ok(windows);
                    break;
                }
                gst::MessageView::Error(e) => {
                    result = Err(e.error().to_string());
                    break;
                }
                _ => {}
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        result
    };
    assert_eq!(run(&model()), Ok(4));
    let err = run(&bogus).unwrap_err();
    assert!(err.contains("bogus.onnx"), "{err}");
    assert_eq!(run(&copy), Ok(4));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn properties_read_at_start_refuse_to_change_while_running() {
    let h = harness(&[]);
    let tagger = h.element().unwrap();
    for (property, value) in [
        ("sessions", "2"),
        ("model", "/elsewhere/other.onnx"),
        ("mode", "live"),
    ] {
        let before = format!("{:?}", tagger.property_value(property));
        tagger.set_property_from_str(property, value);
        assert_eq!(format!("{:?}", tagger.property_value(property)), before);
        let (_, warnings, _) = common::drain_bus(&h);
        assert!(
            warnings.len() == 1 && warnings[0].contains(property),
            "{property}: {warnings:?}"
        );
    }
    // Those read per buffer still change.
    tagger.set_property("top-k", 3u32);
    assert_eq!(tagger.property::<u32>("top-k"), 3);
    assert!(common::drain_bus(&h).1.is_empty());
}
