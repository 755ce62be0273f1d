// SPDX-License-Identifier: MPL-2.0

//! Where a stream is in time, so results carry exact timestamps.

use gst::prelude::*;

/// Model-rate sample 0 of the front-end is at `base`; `input_frames` frames of the input rate
/// have come in since.
pub(super) struct Timing {
    base: gst::ClockTime,
    input_rate: u32,
    input_frames: u64,
}

/// The time `samples` take at `rate`, rounded down to the nanosecond.
pub(super) fn samples_to_time(samples: u64, rate: u32) -> gst::ClockTime {
    gst::ClockTime::SECOND
        .mul_div_floor(samples, rate.into())
        .unwrap_or(gst::ClockTime::MAX)
}

impl Timing {
    pub(super) fn new(base: gst::ClockTime, input_rate: u32) -> Self {
        Self {
            base,
            input_rate,
            input_frames: 0,
        }
    }

    pub(super) fn advance(&mut self, frames: u64) {
        self.input_frames += frames;
    }

    pub(super) fn at_model_sample(&self, sample: u64, rate: u32) -> gst::ClockTime {
        self.base + samples_to_time(sample, rate)
    }

    /// The model-rate sample at `time` (none before the base), rounded down.
    pub(super) fn model_sample_at(&self, time: gst::ClockTime, rate: u32) -> u64 {
        let ns = time.saturating_sub(self.base).nseconds() as u128;
        (ns * rate as u128 / gst::ClockTime::SECOND.nseconds() as u128) as u64
    }

    /// Where the next buffer should start if nothing is missing.
    pub(super) fn expected_next(&self) -> gst::ClockTime {
        self.base + samples_to_time(self.input_frames, self.input_rate)
    }
}
