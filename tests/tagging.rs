// SPDX-License-Identifier: MPL-2.0
//! The element's results: timestamps, messages, meta, options and provider fallback.

mod common;

use gst::prelude::*;

fn f32_buffer(samples: &[f32], pts: gst::ClockTime, rate: u64) -> gst::Buffer {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut buf = gst::Buffer::from_mut_slice(bytes);
    let b = buf.get_mut().unwrap();
    b.set_pts(pts);
    b.set_duration(gst::ClockTime::from_nseconds(
        samples.len() as u64 * 1_000_000_000 / rate,
    ));
    buf
}

/// Element messages the harness's element posted, in order.
fn messages(h: &mut gst_check::Harness) -> Vec<gst::Structure> {
    let bus = h
        .element()
        .unwrap()
        .bus()
        .unwrap_or_else(|| panic!("no bus"));
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Element]))
        .filter_map(|m| {
            m.structure()
                .filter(|s| s.name() == "audiotagger")
                .map(|s| s.to_owned())
        })
        .collect()
}

/// The tests here read each buffer's results and meta as soon as it is pushed, which
/// `blocking` reports before the push returns.
fn harness(props: &[(&str, &str)]) -> gst_check::Harness {
    let props: Vec<_> = [("name", "tagger"), ("mode", "blocking")]
        .iter()
        .chain(props)
        .copied()
        .collect();
    common::tagger_harness(48000, &props)
}

/// 1 kHz at full scale from `from` to `to` seconds, silence elsewhere, at 48 kHz.
fn tone_burst(len_s: f64, from: f64, to: f64) -> Vec<f32> {
    (0..(48000.0 * len_s) as usize)
        .map(|i| {
            let t = i as f64 / 48000.0;
            if (from..to).contains(&t) {
                (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

fn class_id(name: &str) -> usize {
    common::yamnet_labels()
        .iter()
        .position(|l| l == name)
        .expect("a YAMNet class")
}

#[test]
fn timestamps_are_sample_exact_and_a_burst_shows_where_it_is() {
    // The level gate off: the silent windows must be heard as silence by the model itself.
    let mut h = harness(&[
        ("full-scores", "true"),
        ("smoothing", "none"),
        ("min-level", "-200"),
    ]);
    // The stream starts at an odd time: 10 s plus one 48 kHz sample.
    let base = gst::ClockTime::from_seconds(10) + gst::ClockTime::from_nseconds(20_833);
    let audio = tone_burst(6.0, 3.0, 3.3);
    let mut pts = base;
    for chunk in audio.chunks(4410) {
        let buf = f32_buffer(chunk, pts, 48000);
        pts += buf.duration().unwrap();
        h.push(buf).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let msgs = messages(&mut h);
    assert!(msgs.len() >= 11, "{} windows", msgs.len());
    let silence = class_id("Silence");
    for (k, m) in msgs.iter().enumerate() {
        let ts = m.get::<u64>("timestamp").unwrap();
        // Window k starts k × 0.48 s after the first sample, to the nanosecond.
        assert_eq!(ts, base.nseconds() + k as u64 * 480_000_000, "window {k}");
        assert_eq!(m.get::<u64>("duration").unwrap(), 975_000_000);
        assert_eq!(m.get::<u64>("window-index").unwrap(), k as u64);
        let start = (ts - base.nseconds()) as f64 / 1e9;
        let scores = common::floats(m, "full-scores");
        let loudest = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        // Windows holding the whole burst must hear something; windows holding none of it must
        // hear silence. (What the tone is called, "Beep, bleep" here, is the classifier's call;
        // a window with only the burst's edge is too.)
        if start <= 3.0 && start + 0.975 >= 3.3 {
            assert!(
                loudest != silence && scores[silence] < 0.5,
                "window {k} at {start:.2} s holds the tone but hears silence"
            );
        } else if start + 0.975 <= 3.0 || start >= 3.3 {
            assert_eq!(
                loudest,
                silence,
                "window {k} at {start:.2} s is silent but hears {:?}",
                common::strings(m, "labels")
            );
        }
    }
    // The last window was padded at EOS and says so.
    assert!(msgs.last().unwrap().get::<bool>("partial").unwrap());
    assert!(!msgs[0].get::<bool>("partial").unwrap());
}

#[test]
fn meta_is_attached_to_the_buffer_that_completes_each_window() {
    let mut h = harness(&[]);
    let audio = tone_burst(3.0, 0.5, 2.5);
    let (mut pts, mut metas) = (gst::ClockTime::ZERO, Vec::new());
    for chunk in audio.chunks(4800) {
        let buf = f32_buffer(chunk, pts, 48000);
        pts += buf.duration().unwrap();
        let out = h.push_and_pull(buf).unwrap();
        if let Ok(meta) = gst::meta::CustomMeta::from_buffer(&out, "AudioTaggerMeta") {
            let s = meta.structure();
            let start = s.get::<u64>("timestamp").unwrap();
            // The window's last sample has arrived by the end of this buffer, and the result is
            // not held back longer than the resampler's block (under 50 ms at 48 kHz).
            let end = start + s.get::<u64>("duration").unwrap();
            let buffer_end = (out.pts().unwrap() + out.duration().unwrap()).nseconds();
            assert!(
                end <= buffer_end + 1 && buffer_end - end < 50_000_000 + 100_000_000,
                "window end {end}, buffer end {buffer_end}"
            );
            metas.push(s.to_owned());
        }
    }
    // 3 s at hop 0.48 s: complete windows at 0, 0.48, …, 1.92 (ends 2.895 s).
    assert_eq!(metas.len(), 5);
    let msgs = messages(&mut h);
    for (meta, msg) in metas.iter().zip(&msgs) {
        assert_eq!(
            meta.get::<u64>("timestamp").unwrap(),
            msg.get::<u64>("timestamp").unwrap()
        );
        assert_eq!(
            common::strings(meta, "labels"),
            common::strings(msg, "labels")
        );
    }
}

#[test]
fn meta_survives_audioconvert_and_audioresample() {
    common::init();
    let (pipeline, sink) = common::launch_to_appsink(&format!(
        "filesrc location=\"{}\" ! decodebin ! audioconvert ! audiotagger mode=blocking post-messages=false ! audioconvert ! audioresample ! audio/x-raw,rate=8000,format=S16LE ! appsink name=sink sync=false",
        common::shared_audio()
            .join("speech__librispeech__1.wav")
            .display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut found = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        if let Ok(meta) = gst::meta::CustomMeta::from_buffer(buf, "AudioTaggerMeta") {
            found.push(common::strings(meta.structure(), "labels"));
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        found.len() >= 20,
        "{} metas arrived after audioresample",
        found.len()
    );
    assert!(
        found
            .iter()
            .all(|l| l.first().map(String::as_str) == Some("Speech")),
        "{found:?}"
    );
}

#[test]
fn options_shape_the_results() {
    let mut h = harness(&[
        ("full-scores", "true"),
        ("embeddings", "true"),
        ("top-k", "2"),
        ("threshold", "0.0"),
        ("exclude", "Silence"),
    ]);
    h.push(f32_buffer(
        &tone_burst(1.5, 0.0, 1.5),
        gst::ClockTime::ZERO,
        48000,
    ))
    .unwrap();
    let msgs = messages(&mut h);
    assert_eq!(msgs.len(), 2);
    let m = &msgs[0];
    assert_eq!(common::floats(m, "full-scores").len(), 521);
    assert_eq!(common::floats(m, "embedding").len(), 1024);
    let labels = common::strings(m, "labels");
    assert_eq!(labels.len(), 2);
    assert!(!labels.contains(&"Silence".to_string()));
    let scores = common::floats(m, "scores");
    assert!(scores[0] >= scores[1]);

    // An allow list restricts the results to those classes.
    let mut h = harness(&[("labels", "Speech;Music"), ("threshold", "0.0")]);
    h.push(f32_buffer(
        &tone_burst(1.0, 0.0, 1.0),
        gst::ClockTime::ZERO,
        48000,
    ))
    .unwrap();
    for m in messages(&mut h) {
        let labels = common::strings(&m, "labels");
        assert!(
            !labels.is_empty() && labels.iter().all(|l| l == "Speech" || l == "Music"),
            "{labels:?}"
        );
    }
}

#[test]
fn a_large_buffer_is_batched_and_gives_the_same_results_as_small_ones() {
    let audio = tone_burst(6.0, 1.0, 4.0);
    // Every window through the model (the level gate off), in one batch or one at a time.
    let props = [("full-scores", "true"), ("min-level", "-200")];
    let mut one = harness(&props);
    one.push(f32_buffer(&audio, gst::ClockTime::ZERO, 48000))
        .unwrap();
    let mut many = harness(&props);
    let mut pts = gst::ClockTime::ZERO;
    for chunk in audio.chunks(1000) {
        let b = f32_buffer(chunk, pts, 48000);
        pts += b.duration().unwrap();
        many.push(b).unwrap();
    }
    let (a, b) = (messages(&mut one), messages(&mut many));
    assert_eq!(a.len(), 11);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.get::<u64>("timestamp").unwrap(),
            y.get::<u64>("timestamp").unwrap()
        );
        for (p, q) in common::floats(x, "full-scores")
            .iter()
            .zip(common::floats(y, "full-scores"))
        {
            assert!((p - q).abs() < 1e-5, "batched {p} vs single {q}");
        }
    }
}

/// (active provider, warning if any, every window's scores) of one run of real audio.
fn tag_with_provider(provider: &str) -> (String, Option<String>, Vec<Vec<f64>>) {
    common::init();
    let file = common::shared_audio().join("long/speech__asterisk__3.wav");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! audioconvert ! audiotagger name=t \
         execution-provider={provider} mode=queued full-scores=true ! fakesink",
        file.display()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut warning, mut scores) = (None, Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Warning(w) => {
                warning = Some(format!("{} {:?}", w.error(), w.debug()))
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "audiotagger") {
                    scores.push(common::floats(s, "full-scores"));
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    let active = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("t")
        .unwrap()
        .property::<Option<String>>("active-execution-provider")
        .unwrap_or_default();
    pipeline.set_state(gst::State::Null).unwrap();
    (active, warning, scores)
}

/// With a GPU and onnxruntime-gpu, CUDA must give the CPU's results, through batches of every
/// size padded to the GPU's (`mode=queued` on a file); without them, the element must say so
/// and go on on the CPU. CI takes the second branch, a GPU machine the first.
#[test]
fn cuda_runs_on_the_gpu_or_says_why_not_and_runs_on_the_cpu() {
    let (active, warning, on_cuda) = tag_with_provider("cuda");
    assert!(!on_cuda.is_empty(), "tags either way");
    match active.as_str() {
        "cuda" => {
            assert_eq!(warning, None);
            let (_, _, on_cpu) = tag_with_provider("cpu");
            assert_eq!(on_cuda.len(), on_cpu.len());
            // ONNX Runtime's CUDA provider multiplies in TF32 by default (10-bit mantissas).
            for (g, c) in on_cuda.iter().zip(&on_cpu) {
                for (p, q) in g.iter().zip(c) {
                    assert!((p - q).abs() < 1e-2, "CUDA {p} vs CPU {q}");
                }
            }
        }
        "cpu" => {
            let warning = warning.expect("a warning that CUDA is not used");
            assert!(
                warning.contains("cuda") && warning.contains("CPU"),
                "{warning}"
            );
        }
        other => panic!("active-execution-provider {other:?}"),
    }
}

/// The latency the element adds to a live audiotestsrc's, in `mode`.
fn added_latency(mode: &str) -> gst::ClockTime {
    common::init();
    let pipeline = gst::parse::launch(&format!(
        "audiotestsrc name=src is-live=true ! audiotagger name=t mode={mode} ! fakesink"
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let query = |name: &str| {
        let mut q = gst::query::Latency::new();
        assert!(
            bin.by_name(name)
                .unwrap()
                .static_pad("src")
                .unwrap()
                .query(&mut q)
        );
        q.result()
    };
    let (upstream, with) = (query("src"), query("t"));
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(with.0, "still live");
    with.1 - upstream.1
}

#[test]
fn latency_query_adds_the_processing_time() {
    // Queued mode waits when its queue is full, as blocking mode does for every window.
    for mode in ["blocking", "queued"] {
        let added = added_latency(mode);
        assert!(
            added >= gst::ClockTime::from_mseconds(1) && added < gst::ClockTime::from_mseconds(500),
            "{mode}: added {added}"
        );
    }
}

#[test]
fn live_mode_adds_no_latency_since_it_never_waits_for_the_model() {
    assert_eq!(added_latency("live"), gst::ClockTime::ZERO);
}

#[test]
fn missing_model_is_an_error_naming_the_file_and_the_fix() {
    let (error, _) = common::expect_start_error(
        "audiotestsrc num-buffers=5 ! audiotagger model=/nonexistent/m.onnx ! fakesink",
    );
    let text = error.to_string();
    assert!(
        text.contains("/nonexistent/m.onnx") && text.contains("scripts/setup.sh"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_not_onnx_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("audiotagger-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bogus = dir.join("truncated.onnx");
    std::fs::write(&bogus, b"not an onnx model").unwrap();
    let (error, _) = common::expect_start_error(&format!(
        "audiotestsrc num-buffers=5 ! audiotagger model=\"{}\" ! fakesink",
        bogus.display()
    ));
    assert!(
        error
            .to_string()
            .contains("could not be loaded as an ONNX model"),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn caps_change_mid_stream_keeps_tagging_with_right_timestamps() {
    let mut h = harness(&[]);
    let first = tone_burst(2.0, 0.0, 2.0);
    h.push(f32_buffer(&first, gst::ClockTime::ZERO, 48000))
        .unwrap();
    // Now 16 kHz stereo S16, continuing at 2 s.
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", 16000)
        .field("channels", 2)
        .field("layout", "interleaved")
        .build();
    h.set_caps(caps.clone(), caps);
    let stereo: Vec<u8> = (0..16000 * 2)
        .flat_map(|i| {
            let v =
                ((2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin() * 8000.0) as i16;
            [v.to_le_bytes(), v.to_le_bytes()].concat()
        })
        .collect();
    let mut buf = gst::Buffer::from_mut_slice(stereo);
    buf.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_seconds(2));
    buf.get_mut().unwrap().set_flags(gst::BufferFlags::DISCONT);
    h.push(buf).unwrap();
    let starts: Vec<u64> = messages(&mut h)
        .iter()
        .map(|m| m.get::<u64>("timestamp").unwrap())
        .collect();
    // Before: 0, 0.48, 0.96 (complete within 2 s); after: a new run from 2 s.
    assert_eq!(&starts[..3], &[0, 480_000_000, 960_000_000]);
    assert!(starts.contains(&2_000_000_000), "{starts:?}");
    assert!(starts.contains(&2_480_000_000), "{starts:?}");
}

#[test]
fn start_stop_cycles_do_not_leak_or_fail() {
    common::init();
    let pipeline =
        gst::parse::launch("audiotestsrc num-buffers=20 ! audiotagger ! fakesink").unwrap();
    for _ in 0..50 {
        pipeline.set_state(gst::State::Playing).unwrap();
        let _ = pipeline.state(gst::ClockTime::from_seconds(5));
        pipeline.set_state(gst::State::Null).unwrap();
    }
    // Stopped elements release the shared session: a new one with other options still loads.
    let other =
        gst::parse::launch("audiotestsrc num-buffers=20 ! audiotagger threads=2 ! fakesink")
            .unwrap();
    other.set_state(gst::State::Playing).unwrap();
    assert!(other.state(gst::ClockTime::from_seconds(10)).0.is_ok());
    other.set_state(gst::State::Null).unwrap();
}
