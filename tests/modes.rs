// SPDX-License-Identifier: MPL-2.0
//! The `mode` property: queued and live hand windows to the shared inference thread and report
//! later; they must report what blocking reports, batch other elements' windows without mixing
//! them up, and in live mode skip (and say so) rather than hold the audio back.

mod common;

use gst::prelude::*;

/// 30 s of real music (22.05 kHz mono) from ../shared/audio/long.
fn music() -> (Vec<f32>, u64) {
    let path = common::shared_audio().join("long/music__librosa__4.wav");
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
    let rate = u64::from(spec.sample_rate);
    let samples = reader
        .samples::<i16>()
        .take(30 * rate as usize)
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    (samples, rate)
}

/// The window messages, warnings and errors of `audio` pushed in `block`-sample buffers
/// through one element with `props`, up to EOS; every buffer is checked to pass unchanged.
fn run(
    props: &[(&str, &str)],
    audio: &[f32],
    rate: u64,
    block: usize,
) -> (Vec<gst::Structure>, Vec<String>, Vec<String>, u64) {
    let props: Vec<_> = [("full-scores", "true")]
        .iter()
        .chain(props)
        .copied()
        .collect();
    let mut h = common::tagger_harness(rate as i32, &props);
    common::push_checked(&mut h, audio, block, 0, rate);
    assert!(h.push_event(gst::event::Eos::new()));
    let skipped = h.element().unwrap().property::<u64>("windows-skipped");
    let (windows, warnings, errors) = common::drain_bus(&h);
    (windows, warnings, errors, skipped)
}

fn index_and_time(w: &gst::StructureRef) -> (u64, u64) {
    (
        w.get::<u64>("window-index").unwrap(),
        w.get::<gst::ClockTime>("timestamp").unwrap().nseconds(),
    )
}

/// Largest score difference between two runs' windows, which must be the same windows.
fn worst_difference(a: &[gst::Structure], b: &[gst::Structure]) -> f64 {
    assert_eq!(
        a.iter().map(|w| index_and_time(w)).collect::<Vec<_>>(),
        b.iter().map(|w| index_and_time(w)).collect::<Vec<_>>()
    );
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            common::floats(x, "full-scores")
                .into_iter()
                .zip(common::floats(y, "full-scores"))
                .map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn queued_and_live_report_what_blocking_reports() {
    let (audio, rate) = music();
    let block = rate as usize / 50; // 20 ms buffers, as live sources send
    let (reference, _, _, _) = run(&[("mode", "blocking")], &audio, rate, block);
    assert_eq!(reference.len(), 62); // 30 s at a 0.48 s hop, the last one padded
    for props in [
        &[("mode", "queued")][..],
        &[("mode", "queued"), ("max-queue", "1")],
        &[("mode", "live"), ("max-queue", "10000")],
        // Two sessions finish batches out of order; the element still reports in order.
        &[("mode", "queued"), ("sessions", "2")],
        &[("mode", "live"), ("sessions", "2"), ("max-queue", "10000")],
    ] {
        let (windows, warnings, errors, skipped) = run(props, &audio, rate, block);
        assert!(
            warnings.is_empty() && errors.is_empty(),
            "{props:?}: {warnings:?} {errors:?}"
        );
        assert_eq!(skipped, 0, "{props:?}");
        let worst = worst_difference(&reference, &windows);
        assert!(worst < 1e-5, "{props:?}: scores differ by {worst}");
    }
}

#[test]
fn live_mode_skips_windows_when_the_queue_is_full_and_says_so() {
    let (audio, rate) = music();
    let mut h = common::tagger_harness(rate as i32, &[("mode", "live"), ("max-queue", "2")]);
    // One 10 s buffer completes 19 windows at once (the 20th ends at 10 s exactly and waits for
    // the resampler's look-ahead): more than may wait, so all are skipped.
    let first = 10 * rate as usize;
    common::push_checked(&mut h, &audio[..first], first, 0, rate);
    assert_eq!(h.element().unwrap().property::<u64>("windows-skipped"), 19);
    // Then 20 ms buffers: a window at a time, which the model keeps up with.
    common::push_checked(
        &mut h,
        &audio[first..],
        rate as usize / 50,
        first as u64,
        rate,
    );
    assert!(h.push_event(gst::event::Eos::new()));
    let skipped = h.element().unwrap().property::<u64>("windows-skipped");
    let (windows, warnings, errors) = common::drain_bus(&h);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        warnings.iter().any(|w| w.contains("cannot keep up")),
        "{warnings:?}"
    );
    let indices: Vec<u64> = windows.iter().map(|w| index_and_time(w).0).collect();
    assert_eq!(
        indices.first(),
        Some(&19),
        "the first reported window follows the skipped ones"
    );
    assert!(indices.windows(2).all(|p| p[0] < p[1]), "{indices:?}");
    assert_eq!(
        skipped + windows.len() as u64,
        62,
        "every window is reported or counted"
    );
}

#[test]
fn live_mode_by_default_lets_16_windows_wait() {
    let (audio, rate) = music();
    // One buffer of 8 s completes 15 windows, one of 10 s completes 19: only the second is
    // more than the live default (16) lets wait.
    for (seconds, skipped) in [(8, 0), (10, 19)] {
        let mut h = common::tagger_harness(rate as i32, &[("mode", "live")]);
        let samples = seconds * rate as usize;
        common::push_checked(&mut h, &audio[..samples], samples, 0, rate);
        assert_eq!(
            h.element().unwrap().property::<u64>("windows-skipped"),
            skipped,
            "{seconds} s"
        );
    }
}

#[test]
fn elements_sharing_a_model_get_their_own_results() {
    let (audio, rate) = music();
    let block = rate as usize / 50;
    // Each element hears a different 10 s of the music, so mixed-up batch rows would show.
    let part = |k: usize| audio[k * rate as usize * 2..][..10 * rate as usize].to_vec();
    let references: Vec<_> = (0..8)
        .map(|k| run(&[("mode", "blocking")], &part(k), rate, block).0)
        .collect();
    // Queued elements always go through the inference threads' batches; concurrent blocking
    // ones run on their own thread when a session is idle and queue up when none is.
    for (mode, sessions) in [
        ("queued", "1"),
        ("blocking", "1"),
        ("queued", "2"),
        ("blocking", "2"),
    ] {
        let runs: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|k| {
                    let audio = part(k);
                    let props = [("mode", mode), ("sessions", sessions)];
                    s.spawn(move || run(&props, &audio, rate, block))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (k, ((windows, warnings, errors, _), reference)) in
            runs.iter().zip(&references).enumerate()
        {
            assert!(
                warnings.is_empty() && errors.is_empty(),
                "{mode}, {sessions} sessions: {warnings:?} {errors:?}"
            );
            let worst = worst_difference(reference, windows);
            assert!(
                worst < 1e-4,
                "{mode}, {sessions} sessions, element {k}: scores differ by {worst}"
            );
        }
    }
}

#[test]
fn live_results_do_not_wait_for_the_next_buffer() {
    let (audio, rate) = music();
    let mut h = common::tagger_harness(rate as i32, &[("mode", "live")]);
    let window_of = |buffer: &gst::Buffer| {
        gst::meta::CustomMeta::from_buffer(buffer, "AudioTaggerMeta")
            .map(|m| m.structure().get::<u64>("window-index").unwrap())
    };
    // 1.2 s completes window 0 (0.975 s, plus the resampler's block and delay at this
    // recording's 44.1 kHz) and not window 1 (1.455 s); no buffer follows until its message
    // is on the bus.
    let first_part = rate as usize * 6 / 5;
    h.push(common::f32_buffer(
        &audio[..first_part],
        Some(gst::ClockTime::ZERO),
    ))
    .unwrap();
    let first = h.pull().unwrap();
    let bus = h.element().unwrap().bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Element],
        )
        .expect("window 0 reported by the inference thread");
    let s = message.structure().unwrap();
    assert_eq!(index_and_time(s), (0, 0));
    // Its meta is on the buffer that completed it if the result was in before that buffer
    // left, else on the next one; on exactly one of them.
    h.push(common::f32_buffer(
        &audio[first_part..][..320],
        Some(common::samples_to_time(first_part as u64, rate)),
    ))
    .unwrap();
    let next = h.pull().unwrap();
    let carried: Vec<_> = [window_of(&first), window_of(&next)]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(carried, [0]);
}

/// The streaming thread holds the sink pad's stream lock and then takes the element's state;
/// the inference thread, reporting live results, holds the state. So it must never wait for
/// the stream lock (as reading the pad's segment does), or the two deadlock.
#[test]
fn live_results_are_reported_while_the_stream_lock_is_held() {
    let (audio, rate) = music();
    let mut h = common::tagger_harness(rate as i32, &[("mode", "live"), ("max-queue", "1000")]);
    let element = h.element().unwrap();
    let bus = element.bus().unwrap();
    let sink = element.static_pad("sink").unwrap();
    // 8 s at once: 15 windows, tens of milliseconds of inference after `push` returns.
    let first = 8 * rate as usize;
    common::push_checked(&mut h, &audio[..first], first, 0, rate);
    // As a streaming thread would be, on its way into the element with the next buffer.
    let stream_lock = sink.stream_lock();
    let reported = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(10),
        &[gst::MessageType::Element],
    );
    drop(stream_lock);
    assert!(
        reported.is_some(),
        "no result while the stream lock was held: the inference thread waits for it"
    );
}

/// The shared YAMNet with `sessions` single-thread CPU sessions, and the size of one window.
fn shared_yamnet(sessions: usize) -> (std::sync::Arc<gstaudiotagger::model::SharedModel>, usize) {
    common::init();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yamnet.onnx");
    let options = gstaudiotagger::model::SessionOptions {
        provider: gstaudiotagger::model::Provider::Cpu,
        device_id: 0,
        threads: 1,
        ..Default::default()
    };
    let shared = gstaudiotagger::model::shared::get(&model, &options, sessions).unwrap();
    let window = shared
        .descriptor()
        .frontend
        .feature_shape()
        .iter()
        .product();
    (shared, window)
}

#[test]
fn two_sessions_run_two_batches_at_once() {
    use gstaudiotagger::model::batcher::Job;
    let (shared, window) = shared_yamnet(2);
    assert_eq!(shared.sessions(), 2);
    let timeout = std::time::Duration::from_secs(30);
    let (started_tx, started) = std::sync::mpsc::channel();
    let (second_tx, second) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    // The first job's reply holds its inference thread until the second job has run, which
    // only the other session's thread can do.
    shared.submit(Job {
        features: vec![0.0; window],
        windows: 1,
        embeddings: false,
        reply: Box::new(move |r| {
            started_tx.send(()).unwrap();
            let other = second.recv_timeout(timeout);
            done_tx.send((r.is_ok(), other)).unwrap();
        }),
    });
    started.recv_timeout(timeout).unwrap();
    shared.submit(Job {
        features: vec![0.0; window],
        windows: 1,
        embeddings: false,
        reply: Box::new(move |r| second_tx.send(r.is_ok()).unwrap()),
    });
    assert_eq!(
        done.recv_timeout(2 * timeout),
        Ok((true, Ok(true))),
        "the second batch waited for the first session"
    );
}

#[test]
fn a_panicking_reply_leaves_the_inference_thread_serving_others() {
    use gstaudiotagger::model::batcher::Job;
    let (shared, window) = shared_yamnet(1);
    let job = |reply: gstaudiotagger::model::batcher::Reply| Job {
        features: vec![0.0; window],
        windows: 1,
        embeddings: false,
        reply,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    shared.submit(job(Box::new(|_| panic!("a bug in one element's reply"))));
    let after = tx.clone();
    shared.submit(job(Box::new(move |r| after.send(r.is_ok()).unwrap())));
    let timeout = std::time::Duration::from_secs(30);
    assert_eq!(
        rx.recv_timeout(timeout),
        Ok(true),
        "the job queued beside it"
    );
    shared.submit(job(Box::new(move |r| tx.send(r.is_ok()).unwrap())));
    assert_eq!(rx.recv_timeout(timeout), Ok(true), "a job queued later");
}

/// A copy of YAMNet whose input and outputs declare a fixed batch of `batch`, as models exported
/// for one batch size do (made with the `onnx` package of the project's Python environment).
fn yamnet_with_fixed_batch(batch: usize) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!(
        "audiotagger-yamnet-batch{batch}-{}.onnx",
        std::process::id()
    ));
    let pin = "import onnx, sys\n\
               m = onnx.load(sys.argv[1])\n\
               for v in list(m.graph.input) + list(m.graph.output):\n    \
                   d = v.type.tensor_type.shape.dim[0]\n    \
                   d.ClearField('dim_param'); d.dim_value = int(sys.argv[3])\n\
               onnx.save(m, sys.argv[2])\n";
    let status = std::process::Command::new(root.join(".venv/bin/python"))
        .args(["-c", pin])
        .arg(root.join("models/yamnet.onnx"))
        .arg(&out)
        .arg(batch.to_string())
        .status()
        .expect("the project's Python environment (.venv, made by scripts/setup.sh)");
    assert!(status.success());
    out
}

#[test]
fn a_model_with_a_fixed_batch_size_runs_in_batches_of_that_size() {
    let (audio, rate) = music();
    // 2 s buffers complete four windows each, which queued mode runs as batches of up to 16.
    let block = 2 * rate as usize;
    let (reference, _, _, _) = run(&[("mode", "blocking")], &audio, rate, block);
    for batch in [1, 3] {
        let model = yamnet_with_fixed_batch(batch);
        let shared = gstaudiotagger::model::shared::get(
            &model,
            &gstaudiotagger::model::SessionOptions {
                provider: gstaudiotagger::model::Provider::Cpu,
                ..Default::default()
            },
            1,
        )
        .unwrap();
        assert_eq!(shared.max_batch(), batch);
        let model = model.to_str().unwrap();
        for mode in ["blocking", "queued"] {
            let (windows, warnings, errors, _) =
                run(&[("mode", mode), ("model", model)], &audio, rate, block);
            assert!(errors.is_empty(), "batch {batch}, {mode}: {errors:?}");
            assert!(warnings.is_empty(), "batch {batch}, {mode}: {warnings:?}");
            let worst = worst_difference(&reference, &windows);
            assert!(
                worst < 1e-5,
                "batch {batch}, {mode}: scores differ by {worst}"
            );
        }
        std::fs::remove_file(model).unwrap();
    }
}

#[test]
fn the_hop_property_sets_where_windows_start() {
    let (audio, rate) = music();
    let block = rate as usize / 50;
    let (reference, _, _, _) = run(&[], &audio, rate, block);
    // 235 ms rounds to 240 ms (whole 10 ms frames), half of YAMNet's own 0.48 s hop.
    let (windows, warnings, errors, _) = run(&[("hop", "235000000")], &audio, rate, block);
    assert!(
        warnings.is_empty() && errors.is_empty(),
        "{warnings:?} {errors:?}"
    );
    for (i, w) in windows.iter().enumerate() {
        assert_eq!(index_and_time(w), (i as u64, i as u64 * 240_000_000));
    }
    // Full windows start up to 28.8 s; one more, at 29.04 s, covers the tail (padded). With
    // the default hop that one is at 29.28 s instead.
    assert_eq!(windows.len(), 122);
    // Every second full window is one of the default hop's: the same audio, the same scores.
    let every_other: Vec<gst::Structure> = windows[..121].iter().step_by(2).cloned().collect();
    assert_eq!(every_other.len(), 61);
    let worst = every_other
        .iter()
        .zip(&reference[..61])
        .flat_map(|(a, b)| {
            assert_eq!(index_and_time(a).1, index_and_time(b).1);
            common::floats(a, "full-scores")
                .into_iter()
                .zip(common::floats(b, "full-scores"))
                .map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "scores differ by {worst}");
}

/// Runs `description` (with an `audiotagger name=t`) to EOS: its window messages and the
/// element's `active-mode` at the end.
fn run_to_eos(description: &str) -> (Vec<gst::Structure>, String) {
    common::init();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let windows = common::window_messages(
        &pipeline.bus().unwrap(),
        gst::ClockTime::from_seconds(120),
        description,
    );
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let mode = bin
        .by_name("t")
        .unwrap()
        .property::<Option<String>>("active-mode")
        .unwrap_or_default();
    pipeline.set_state(gst::State::Null).unwrap();
    (windows, mode)
}

#[test]
fn by_default_a_file_is_queued_and_reports_what_blocking_reports() {
    let file = common::shared_audio().join("long/music__librosa__4.wav");
    let run = |props: &str| {
        run_to_eos(&format!(
            "filesrc location={} ! decodebin ! audioconvert ! audiotagger name=t \
             full-scores=true min-level=-200 {props} ! fakesink sync=false",
            file.display()
        ))
    };
    let (reference, mode) = run("mode=blocking");
    assert_eq!(mode, "blocking");
    // 45.84 s at a 0.48 s hop: full windows start at 0 to 44.64 s (94), and a padded one
    // covers the tail.
    assert_eq!(reference.len(), 95);
    let (windows, mode) = run("");
    assert_eq!(mode, "queued");
    // The same windows up to EOS, none lost, the same scores.
    let worst = worst_difference(&reference, &windows);
    assert!(worst < 1e-5, "scores differ by {worst}");
}

#[test]
fn by_default_a_live_source_is_live() {
    // 3 s of a live sine: five full windows and the padded tail, reported in live mode.
    let (windows, mode) = run_to_eos(
        "audiotestsrc is-live=true num-buffers=150 samplesperbuffer=320 ! \
         audio/x-raw,rate=16000 ! audiotagger name=t ! fakesink",
    );
    assert_eq!(mode, "live");
    assert_eq!(windows.len(), 6);
    // A mode set by the user is kept, live source or not.
    let (_, mode) = run_to_eos(
        "audiotestsrc is-live=true num-buffers=10 ! audiotagger name=t mode=queued ! fakesink",
    );
    assert_eq!(mode, "queued");
}
