// SPDX-License-Identifier: MPL-2.0
//! Long runs with memory sampled: an hour of real audio through one element, and a thousand
//! state cycles. Each measures this process's RSS, so they run one at a time, apart from the
//! other tests (their own test binary).

mod common;

use std::sync::Mutex;

use gst::prelude::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn an_hour_of_real_audio_keeps_memory_flat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::init();
    let audio = common::long_recordings(16000);
    assert!(
        audio.len() > 16000 * 60 * 10,
        "../shared/audio/long holds 16 min"
    );
    let caps = common::f32_mono_caps(16000);
    let mut h = gst_check::Harness::new("audiotagger");
    let element = h.element().unwrap();
    element.set_property_from_str("watch", "speech,music,loud");
    element.set_property_from_str("smoothing", "mean");
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    // Pushed as fast as it goes, as from a file: the defaults then pick `queued`.
    h.set_live(false);
    h.set_caps(caps.clone(), caps);
    let hour = 16000u64 * 3600;
    let (mut pushed, mut windows) = (0u64, 0u64);
    let mut samples = Vec::new(); // (audio minutes, RSS KiB)
    let started = std::time::Instant::now();
    while pushed < hour {
        for chunk in audio.chunks(16000) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut buf = gst::Buffer::from_mut_slice(bytes);
            buf.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_nseconds(pushed * 62_500));
            h.push(buf).unwrap();
            drop(h.pull().unwrap());
            pushed += chunk.len() as u64;
            while let Some(m) = bus.pop() {
                match m.view() {
                    gst::MessageView::Element(_) => windows += 1,
                    gst::MessageView::Error(e) => panic!("{}", e.error()),
                    _ => {}
                }
            }
            if pushed % (16000 * 300) < chunk.len() as u64 {
                samples.push((pushed / 16000 / 60, common::rss_kib()));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "soak: {:.1} min of audio, {windows} messages in {elapsed:.1} s ({:.0}x real time); \
         RSS (min, KiB): {samples:?}",
        pushed as f64 / 16000.0 / 60.0,
        pushed as f64 / 16000.0 / elapsed
    );
    // After the first ten minutes (session, arenas and caches warm), memory stays within 8 MiB.
    let warm: Vec<u64> = samples.iter().filter(|s| s.0 >= 10).map(|s| s.1).collect();
    let (lo, hi) = (warm.iter().min().unwrap(), warm.iter().max().unwrap());
    assert!(
        hi - lo < 8 * 1024,
        "RSS moved by {} KiB: {samples:?}",
        hi - lo
    );
    assert!(windows >= 7400, "{windows} messages for an hour");
}

#[test]
fn a_thousand_state_cycles_neither_fail_nor_grow() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::init();
    // A second element keeps the shared session alive, so the cycles exercise the element's own
    // state handling rather than reloading the model 1000 times.
    let keeper = gst::parse::launch("audiotestsrc ! audiotagger ! fakesink").unwrap();
    keeper.set_state(gst::State::Paused).unwrap();
    assert!(keeper.state(gst::ClockTime::from_seconds(10)).0.is_ok());
    let pipeline =
        gst::parse::launch("audiotestsrc num-buffers=2 ! audiotagger ! fakesink").unwrap();
    let mut rss_after_100 = 0;
    for i in 0..1000 {
        for state in [
            gst::State::Ready,
            gst::State::Paused,
            gst::State::Playing,
            gst::State::Null,
        ] {
            pipeline.set_state(state).unwrap();
            assert!(
                pipeline.state(gst::ClockTime::from_seconds(10)).0.is_ok(),
                "cycle {i}"
            );
        }
        if i == 100 {
            rss_after_100 = common::rss_kib();
        }
    }
    let growth = common::rss_kib() as i64 - rss_after_100 as i64;
    eprintln!("RSS growth over cycles 100-1000: {growth} KiB");
    assert!(growth < 8 * 1024, "RSS grew by {growth} KiB");
    keeper.set_state(gst::State::Null).unwrap();
    if let Some(msg) = pipeline
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error])
    {
        panic!("{msg:?}");
    }
}
