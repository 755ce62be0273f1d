// SPDX-License-Identifier: MPL-2.0

//! The audio front-end, free of GStreamer: interleaved input of any rate and channel count in,
//! model-ready windows out.
//!
//! downmix → resample to the model rate → log-mel frames (each computed once, shared by
//! overlapping windows) or raw samples → windows of the model's length every `hop` samples.
//! The first window starts at the first sample; every window carries the model-rate position of
//! its first sample, which maps back to stream time exactly (see [`StreamResampler`]).

pub mod downmix;
pub mod fft_resampler;
pub mod mel;
pub mod mel_bank;
mod mel_input;
pub mod resample;

pub use downmix::Sample;
pub use mel::{LogMel, MelParams};
use mel_input::MelInput;
pub use resample::{MAX_INPUT_RATE, StreamResampler};

/// Whether the hot loops' AVX2 builds can run here. They are the portable code compiled with
/// more lanes, chosen at run time, so one plugin binary serves every x86-64 CPU.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What the model takes as input.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// A [frames × bands] log-mel patch.
    LogMel(MelParams),
    /// The window's samples as they are.
    Waveform,
}

/// The front-end's shape, from the model descriptor and the element's `hop`.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendConfig {
    pub sample_rate: u32,
    pub window_samples: usize,
    pub hop_samples: usize,
    pub input: InputKind,
}

impl FrontendConfig {
    /// YAMNet: 0.975 s windows (96 frames) every 0.48 s.
    pub fn yamnet() -> Self {
        Self {
            sample_rate: 16000,
            window_samples: 15600,
            hop_samples: 7680,
            input: InputKind::LogMel(MelParams::yamnet()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.sample_rate == 0 || self.window_samples == 0 || self.hop_samples == 0 {
            return Err("sample rate, window and hop must be positive".into());
        }
        if let InputKind::LogMel(p) = &self.input {
            p.validate()?;
            if p.sample_rate != self.sample_rate {
                return Err(format!(
                    "mel sample rate {} differs from the model rate {}",
                    p.sample_rate, self.sample_rate
                ));
            }
            let signal = self.window_samples.saturating_sub(p.preemphasis_delay());
            let whole = match p.centre {
                mel::Centre::None => {
                    signal >= p.frame_length
                        && (signal - p.frame_length).is_multiple_of(p.frame_hop)
                }
                _ => signal > 0,
            };
            if !whole {
                return Err(format!(
                    "window of {} samples is not a whole number of {}-sample frames every {}",
                    self.window_samples, p.frame_length, p.frame_hop
                ));
            }
            if !self.hop_samples.is_multiple_of(p.frame_hop) {
                return Err(format!(
                    "hop of {} samples is not a multiple of the frame hop {}",
                    self.hop_samples, p.frame_hop
                ));
            }
        }
        Ok(())
    }

    /// The same front-end with another hop, rounded to what the features allow (whole frames for
    /// log-mel models), at least one frame or sample.
    pub fn with_hop_samples(mut self, hop: usize) -> Self {
        let step = match &self.input {
            InputKind::LogMel(p) => p.frame_hop,
            InputKind::Waveform => 1,
        };
        self.hop_samples = (((hop + step / 2) / step).max(1)) * step;
        self
    }

    /// The same front-end with a hop given in nanoseconds (the element's `hop`), rounded as
    /// [`FrontendConfig::with_hop_samples`] rounds.
    pub fn with_hop_ns(self, nanoseconds: u64) -> Self {
        let hop = nanoseconds as u128 * self.sample_rate as u128 / 1_000_000_000;
        self.with_hop_samples(hop as usize)
    }

    /// Frames per window for log-mel models.
    pub fn frames_per_window(&self) -> Option<usize> {
        match &self.input {
            InputKind::LogMel(p) => Some(p.frames_in(self.window_samples)),
            InputKind::Waveform => None,
        }
    }

    /// The model input shape of one window, without the batch dimension.
    pub fn feature_shape(&self) -> Vec<usize> {
        match &self.input {
            InputKind::LogMel(p) => p.shape(self.frames_per_window().unwrap_or(0)),
            InputKind::Waveform => vec![self.window_samples],
        }
    }
}

/// Loudness of a window as the model hears it (downmixed to mono, resampled), in dBFS:
/// 20·log10 of an amplitude where 1.0 is full scale, so a full-scale sine has an RMS of -3 dBFS.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Level {
    pub rms_db: f32,
    pub peak_db: f32,
    /// RMS of the loudest 25 ms block: short sounds that the window's RMS would average away.
    pub short_term_db: f32,
}

/// What silence measures, instead of minus infinity.
pub const LEVEL_FLOOR_DB: f32 = -200.0;

fn to_db(amplitude: f64) -> f32 {
    if amplitude > 0.0 {
        ((20.0 * amplitude.log10()) as f32).max(LEVEL_FLOOR_DB)
    } else {
        LEVEL_FLOOR_DB
    }
}

impl Level {
    /// Measures `samples`, with short-term blocks of `block` samples.
    pub fn measure(samples: &[f32], block: usize) -> Self {
        let block = block.max(1);
        let mut total = 0.0f64;
        let mut loudest_block = 0.0f64;
        let mut peak = 0.0f32;
        for chunk in samples.chunks(block) {
            let (sum, chunk_peak) = square_sum_and_peak(chunk);
            peak = peak.max(chunk_peak);
            total += sum;
            loudest_block = loudest_block.max(sum / chunk.len() as f64);
        }
        let n = samples.len().max(1) as f64;
        Self {
            rms_db: to_db((total / n).sqrt()),
            peak_db: to_db(peak as f64),
            short_term_db: to_db(loudest_block.sqrt()),
        }
    }
}

/// Sum of squares (f32 lanes, f64 total: a 25 ms block loses nothing that matters to a level
/// in dB) and largest magnitude; eight lanes so the loop vectorises.
fn square_sum_and_peak(samples: &[f32]) -> (f64, f32) {
    let (mut sums, mut peaks) = ([0.0f32; 8], [0.0f32; 8]);
    let mut lanes = samples.chunks_exact(8);
    for c in &mut lanes {
        for i in 0..8 {
            sums[i] += c[i] * c[i];
            peaks[i] = peaks[i].max(c[i].abs());
        }
    }
    let mut sum: f64 = sums.iter().map(|&v| v as f64).sum();
    let mut peak = peaks.iter().fold(0.0f32, |p, &v| p.max(v));
    for &v in lanes.remainder() {
        sum += (v as f64) * (v as f64);
        peak = peak.max(v.abs());
    }
    (sum, peak)
}

/// One model input, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// 0, 1, 2, … in stream order.
    pub index: u64,
    /// Model-rate position of the window's first sample, counted from the stream start.
    pub start: u64,
    /// Real samples in the window; less than the window length only for the zero-padded
    /// window that ends a stream.
    pub valid_samples: usize,
    pub features: Vec<f32>,
    pub level: Level,
}

impl Window {
    pub fn is_partial(&self, config: &FrontendConfig) -> bool {
        self.valid_samples < config.window_samples
    }
}

enum Features {
    LogMel {
        mel: Box<LogMel>,
        input: MelInput,
        /// Model-rate samples handed to `input` so far.
        fed: u64,
        bands: usize,
        /// Log-mel frames not yet consumed, flat; `frames_base` is the index of the first.
        frames: Vec<f32>,
        frames_base: u64,
        next_frame: u64,
    },
    Waveform,
}

/// The streaming front-end for one stream.
pub struct Frontend {
    config: FrontendConfig,
    channels: usize,
    resampler: Option<StreamResampler>,
    features: Features,
    /// Model-rate samples not yet consumed; `samples_base` is the position of the first.
    samples: Vec<f32>,
    samples_base: u64,
    samples_total: u64,
    next_window: u64,
    non_finite: u64,
    /// Model-rate samples kept behind the newest for [`Frontend::recent`].
    history: usize,
}

impl Frontend {
    pub fn new(config: FrontendConfig, input_rate: u32, channels: usize) -> Result<Self, String> {
        config.validate()?;
        if channels == 0 || input_rate == 0 {
            return Err("input must have a rate and at least one channel".into());
        }
        let resampler = (input_rate != config.sample_rate)
            .then(|| StreamResampler::new(input_rate, config.sample_rate))
            .transpose()?;
        let features = match &config.input {
            InputKind::LogMel(p) => Features::LogMel {
                mel: Box::new(LogMel::new(p.clone())?),
                input: MelInput::new(p),
                fed: 0,
                bands: p.bands,
                frames: Vec::new(),
                frames_base: 0,
                next_frame: 0,
            },
            InputKind::Waveform => Features::Waveform,
        };
        Ok(Self {
            config,
            channels,
            resampler,
            features,
            samples: Vec::new(),
            samples_base: 0,
            samples_total: 0,
            next_window: 0,
            non_finite: 0,
            history: 0,
        })
    }

    pub fn config(&self) -> &FrontendConfig {
        &self.config
    }

    /// Model-rate samples received so far (after resampling).
    pub fn samples_total(&self) -> u64 {
        self.samples_total
    }

    /// NaN or infinite input samples replaced by silence so far.
    pub fn non_finite_samples(&self) -> u64 {
        self.non_finite
    }

    /// Keeps at least the newest `samples` model-rate samples for [`Frontend::recent`].
    pub fn keep_history(&mut self, samples: usize) {
        self.history = samples;
    }

    /// Appends model-rate samples `from..from + len` to `out`: silence for any part not
    /// received yet or no longer kept.
    pub fn recent(&self, from: u64, len: usize, out: &mut Vec<f32>) {
        let end = self.samples_base + self.samples.len() as u64;
        for pos in from..from + len as u64 {
            out.push(if pos >= self.samples_base && pos < end {
                self.samples[(pos - self.samples_base) as usize]
            } else {
                0.0
            });
        }
    }

    /// Model-rate position where window `index` starts.
    pub fn window_start(&self, index: u64) -> u64 {
        index * self.config.hop_samples as u64
    }

    /// Feeds interleaved input; appends every window it completes to `out`.
    pub fn push<S: Sample>(&mut self, interleaved: &[S], out: &mut Vec<Window>) {
        // The mono signal goes straight into the resampler's input, and the resampler writes
        // straight into `samples`: no intermediate copies.
        let (before, channels) = (self.samples.len(), self.channels);
        let mut non_finite = 0;
        match self.resampler.as_mut() {
            Some(r) => r.process_with(
                |input| non_finite = downmix::downmix_into(interleaved, channels, input),
                &mut self.samples,
            ),
            None => non_finite = downmix::downmix_into(interleaved, channels, &mut self.samples),
        }
        self.non_finite += non_finite as u64;
        self.samples_total += (self.samples.len() - before) as u64;
        self.emit_windows(out);
    }

    /// Ends the stream: drains the resampler and, if samples are left that no complete window
    /// covered, emits one last window padded with silence (`valid_samples` tells how much is
    /// real). A stream shorter than one window thus still gets a result.
    pub fn finish(&mut self, out: &mut Vec<Window>) {
        if let Some(r) = self.resampler.as_mut() {
            let mut tail = Vec::new();
            r.flush(&mut tail);
            self.push_model_rate(&tail, out);
        }
        let total = self.samples_total;
        let window = self.config.window_samples as u64;
        let covered = match self.next_window {
            0 => 0,
            n => self.window_start(n - 1) + window,
        };
        let start = self.window_start(self.next_window);
        // With a hop longer than the window, a tail that falls between windows is skipped too.
        if total > covered && total > start {
            let pad = (start + window).saturating_sub(total) as usize;
            let first = out.len();
            self.push_model_rate(&vec![0.0; pad], out);
            if let Features::LogMel { input, .. } = &mut self.features {
                input.finish();
                self.emit_windows(out);
            }
            for w in &mut out[first..] {
                w.valid_samples = total.saturating_sub(w.start).min(window) as usize;
            }
        }
    }

    fn push_model_rate(&mut self, samples: &[f32], out: &mut Vec<Window>) {
        self.samples.extend_from_slice(samples);
        self.samples_total += samples.len() as u64;
        self.emit_windows(out);
    }

    /// Computes the frames and windows that the samples received so far complete.
    fn emit_windows(&mut self, out: &mut Vec<Window>) {
        let hop = self.config.hop_samples as u64;
        let window = self.config.window_samples;
        let end = self.samples_base + self.samples.len() as u64;
        let level_block = (self.config.sample_rate / 40).max(1) as usize;
        match &mut self.features {
            Features::Waveform => {
                while self.next_window * hop + window as u64 <= end {
                    let from = (self.next_window * hop - self.samples_base) as usize;
                    let samples = &self.samples[from..from + window];
                    out.push(Window {
                        index: self.next_window,
                        start: self.next_window * hop,
                        valid_samples: window,
                        features: samples.to_vec(),
                        level: Level::measure(samples, level_block),
                    });
                    self.next_window += 1;
                }
                self.trim_samples(self.next_window * hop);
            }
            Features::LogMel {
                mel,
                input,
                fed,
                bands,
                frames,
                frames_base,
                next_frame,
            } => {
                input.push(&self.samples[(*fed - self.samples_base) as usize..]);
                *fed = end;
                let p = mel.params();
                let (frame_hop, frame_len, bands) = (p.frame_hop as u64, p.frame_length, *bands);
                let per_window = p.frames_in(window);
                let hop_frames = hop / frame_hop;
                // Frames before the next window's first frame are never needed (hop > window).
                let first_needed = self.next_window * hop_frames;
                if *next_frame < first_needed {
                    frames.clear();
                    *frames_base = first_needed;
                    *next_frame = first_needed;
                }
                while *next_frame * frame_hop + frame_len as u64 <= input.end() {
                    let at = frames.len();
                    frames.resize(at + bands, 0.0);
                    mel.frame(input.from(*next_frame * frame_hop), &mut frames[at..]);
                    *next_frame += 1;
                    // Emit every window this frame completes.
                    while self.next_window * hop_frames + per_window as u64 <= *next_frame {
                        let first = (self.next_window * hop_frames - *frames_base) as usize * bands;
                        let from = (self.next_window * hop - self.samples_base) as usize;
                        let mut features = Vec::with_capacity(per_window * bands);
                        mel.params().window_features(
                            &frames[first..first + per_window * bands],
                            &mut features,
                        );
                        out.push(Window {
                            index: self.next_window,
                            start: self.next_window * hop,
                            valid_samples: window,
                            features,
                            level: Level::measure(&self.samples[from..from + window], level_block),
                        });
                        self.next_window += 1;
                    }
                }
                // Keep only the frames the next window still needs.
                let keep_from = self.next_window * hop_frames;
                if keep_from > *frames_base {
                    let drop = ((keep_from - *frames_base) as usize * bands).min(frames.len());
                    frames.drain(..drop);
                    *frames_base = keep_from.min(*next_frame);
                    if frames.is_empty() {
                        *frames_base = keep_from;
                        *next_frame = (*next_frame).max(keep_from);
                    }
                }
                input.trim((*next_frame * frame_hop).min(self.next_window * hop));
                // Samples stay until their window's level has been measured.
                self.trim_samples(self.next_window * hop);
            }
        }
    }

    /// Drops samples before model-rate position `pos`, which no future frame or window needs.
    ///
    /// Only once they are at least as many as the samples kept: a window's samples stay until
    /// it completes, so dropping at every buffer would move most of a window per buffer.
    /// This way the samples moved never outnumber the samples dropped, and the buffer stays
    /// under twice the kept size.
    fn trim_samples(&mut self, pos: u64) {
        let end = self.samples_base + self.samples.len() as u64;
        let pos = pos.min(end.saturating_sub(self.history as u64));
        if pos > self.samples_base {
            let drop = ((pos - self.samples_base) as usize).min(self.samples.len());
            if drop >= self.samples.len() - drop {
                self.samples.drain(..drop);
                self.samples_base += drop as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests;
