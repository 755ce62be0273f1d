// SPDX-License-Identifier: MPL-2.0
//! The element only listens: every format, rate and channel count leaves bit for bit as it came.

mod common;

use gst::prelude::*;

fn caps(format: &str, rate: i32, channels: i32) -> gst::Caps {
    let mut caps = gst::Caps::builder("audio/x-raw")
        .field("format", format)
        .field("rate", rate)
        .field("channels", channels)
        .field("layout", "interleaved");
    if channels > 2 {
        // Unpositioned channels, as audioconvert announces them for unknown layouts.
        caps = caps.field("channel-mask", gst::Bitmask::new(0));
    }
    caps.build()
}

fn assert_bit_exact(format: &str, bytes_per_sample: usize, rate: i32, channels: i32) {
    common::init();
    let mut h = gst_check::Harness::new("audiotagger");
    h.set_caps(caps(format, rate, channels), caps(format, rate, channels));
    let frame = bytes_per_sample * channels as usize;
    let mut pts = gst::ClockTime::ZERO;
    // Odd buffer sizes on purpose: windows will not line up with buffers.
    for (i, frames) in [1usize, 7, 441, 4096, 16000, 3].into_iter().enumerate() {
        let mut bytes = common::noise_bytes(frames * frame, (i as u64 + 1) * 7919);
        if format.starts_with('F') {
            // Random bits can spell NaN, which compares unequal to itself only as a float: the
            // check is on bytes, so keep them, but also make sure ordinary values pass.
            bytes
                .iter_mut()
                .step_by(bytes_per_sample)
                .for_each(|b| *b &= 0x7f);
        }
        let mut buf = gst::Buffer::from_mut_slice(bytes.clone());
        let dur = gst::ClockTime::from_nseconds(frames as u64 * 1_000_000_000 / rate as u64);
        buf.get_mut().unwrap().set_pts(pts);
        buf.get_mut().unwrap().set_duration(dur);
        pts += dur;
        let out = h.push_and_pull(buf).expect("buffer comes out");
        let map = out.map_readable().unwrap();
        assert_eq!(
            map.as_slice(),
            bytes.as_slice(),
            "{format} {rate} Hz x{channels}: buffer {i} changed"
        );
        assert_eq!(out.pts(), Some(pts - dur));
    }
}

#[test]
fn s16le_mono_16k() {
    assert_bit_exact("S16LE", 2, 16000, 1);
}

#[test]
fn s16le_stereo_44k1() {
    assert_bit_exact("S16LE", 2, 44100, 2);
}

#[test]
fn s32le_stereo_48k() {
    assert_bit_exact("S32LE", 4, 48000, 2);
}

#[test]
fn f32le_six_channels_96k() {
    assert_bit_exact("F32LE", 4, 96000, 6);
}

#[test]
fn f64le_mono_8k() {
    assert_bit_exact("F64LE", 8, 8000, 1);
}

#[test]
fn f32le_odd_rate_three_channels() {
    assert_bit_exact("F32LE", 4, 11025, 3);
}

fn sink_template_caps() -> gst::Caps {
    common::init();
    let element = gst::ElementFactory::make("audiotagger").build().unwrap();
    element.static_pad("sink").unwrap().pad_template_caps()
}

#[test]
fn unsupported_format_is_refused() {
    let tmpl = sink_template_caps();
    assert!(tmpl.can_intersect(&caps("F32LE", 16000, 1)));
    assert!(!tmpl.can_intersect(&caps("U8", 16000, 1)));
    assert!(!tmpl.can_intersect(&caps("S16BE", 16000, 1)));
}

#[test]
fn rates_above_the_bound_are_refused_and_audioresample_bridges_them() {
    let max = gstaudiotagger::frontend::MAX_INPUT_RATE as i32;
    let tmpl = sink_template_caps();
    assert!(tmpl.can_intersect(&caps("S16LE", 1, 1)));
    assert!(tmpl.can_intersect(&caps("S16LE", max, 2)));
    assert!(!tmpl.can_intersect(&caps("S16LE", max + 1, 2)));
    // What the README says to do above it: audioresample brings a 10 MHz stream into range.
    let windows = common::run_pipeline(
        "audiotestsrc num-buffers=2 samplesperbuffer=10000000 wave=pink-noise \
         ! audio/x-raw,rate=10000000,channels=1 ! audioresample quality=0 ! audiotagger \
         ! fakesink",
    );
    // 2 s of audio: three whole windows and the one EOS pads, every 0.48 s.
    let starts: Vec<(u64, bool)> = windows
        .iter()
        .map(|w| {
            let t: u64 = w.get("timestamp").unwrap();
            (t / 10_000_000, w.get("partial").unwrap())
        })
        .collect();
    assert_eq!(
        starts,
        [(0, false), (48, false), (96, false), (144, true)],
        "window starts (10 ms) and partial flags"
    );
}

#[test]
fn every_property_is_documented() {
    common::init();
    let element = gst::ElementFactory::make("audiotagger").build().unwrap();
    let own: Vec<_> = element
        .list_properties()
        .into_iter()
        .filter(|p| p.owner_type() == element.type_())
        .collect();
    assert!(!own.is_empty());
    for p in own {
        let blurb = p.blurb().unwrap_or_default();
        assert!(
            blurb.len() > 20,
            "property {} needs a real blurb, has {blurb:?}",
            p.name()
        );
    }
}
