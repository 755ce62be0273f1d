// SPDX-License-Identifier: MPL-2.0

//! Streaming band-limited resampling of one mono channel to the model's rate.
//!
//! The FFT resampler works on fixed blocks and delays its output by a fixed number of
//! frames. This wrapper hides both: any amount of input can be pushed, and output frame `n`
//! always corresponds to input time `n / output_rate`, so windows get sample-exact timestamps
//! and nothing drifts however long the stream runs (the ratio is exact, in integer chunks).

use super::fft_resampler::FftResampler;

/// The highest input rate the element takes: 32 × 48 kHz, above every PCM rate in use.
///
/// The exact-ratio design costs in proportion to `input_rate / gcd(input_rate, output_rate)`
/// (its transforms hold whole units of the ratio). Tagging 3 s of audio at a rate sharing no
/// factor with 16 kHz took 1.3 s and 265 MB (whole process) at 768 kHz, 2.2 s and 440 MB just
/// under this bound, but more than two minutes and 22 GB at 100 MHz, which caps allow.
pub const MAX_INPUT_RATE: u32 = 1_536_000;

/// Consumed input blocks kept before the buffer is compacted: moving what is left (less than a
/// block) once every few blocks instead of copying all input into the buffer.
const COMPACT_AFTER_BLOCKS: usize = 4;

pub struct StreamResampler {
    inner: FftResampler,
    /// Input not yet resampled starts at `pending[read..]`; the consumed part before it is
    /// dropped only every few blocks, so a sample is rarely moved after it is written.
    pending: Vec<f32>,
    read: usize,
    /// Output frames still to drop: the resampler's own start-up delay.
    skip: usize,
    input_rate: u32,
    output_rate: u32,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    pub fn new(input_rate: u32, output_rate: u32) -> Result<Self, String> {
        if input_rate == 0 || output_rate == 0 {
            return Err(format!(
                "cannot resample {input_rate} Hz to {output_rate} Hz: rates must be positive"
            ));
        }
        if input_rate > MAX_INPUT_RATE {
            return Err(format!(
                "input rate {input_rate} Hz is above the {MAX_INPUT_RATE} Hz this element \
                 resamples; put audioresample before it"
            ));
        }
        let inner = FftResampler::new(input_rate, output_rate);
        let skip = inner.delay();
        Ok(Self {
            inner,
            pending: Vec::new(),
            read: 0,
            skip,
            input_rate,
            output_rate,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resamples `input`, appending every output frame that is complete to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.process_with(|pending| pending.extend_from_slice(input), out);
    }

    /// Like [`process`](Self::process), but `append` writes the new input into the resampler's
    /// own buffer: the front-end downmixes straight into it instead of copying a mono buffer.
    pub fn process_with(&mut self, append: impl FnOnce(&mut Vec<f32>), out: &mut Vec<f32>) {
        let before = self.pending.len();
        append(&mut self.pending);
        self.frames_in += (self.pending.len() - before) as u64;
        let block = self.inner.block_in();
        let pending = std::mem::take(&mut self.pending);
        let mut blocks = pending[self.read..].chunks_exact(block);
        for b in &mut blocks {
            self.run_block(b, out);
            self.read += block;
        }
        self.pending = pending;
        if self.read >= COMPACT_AFTER_BLOCKS * block {
            self.pending.drain(..self.read);
            self.read = 0;
        }
    }

    /// Ends the stream: pushes silence through until every input frame has its output frames.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let expected = self.expected_output(self.frames_in);
        let pending = std::mem::take(&mut self.pending);
        self.run_block(&pending[self.read..], out);
        self.read = 0;
        while self.frames_out < expected {
            self.run_block(&[], out);
        }
        out.truncate(out.len() - (self.frames_out - expected) as usize);
        self.frames_out = expected;
    }

    /// Output frames that correspond to `frames_in` input frames, rounded down.
    fn expected_output(&self, frames_in: u64) -> u64 {
        (frames_in as u128 * self.output_rate as u128 / self.input_rate as u128) as u64
    }

    /// Runs one block straight into the end of `out`; `input` shorter than a block is padded
    /// with silence.
    fn run_block(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let start = out.len();
        let produced = self.inner.block_out();
        out.resize(start + produced, 0.0);
        self.inner.process(input, &mut out[start..]);
        let dropped = self.skip.min(produced);
        if dropped > 0 {
            self.skip -= dropped;
            out.drain(start..start + dropped);
        }
        self.frames_out += (produced - dropped) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resample_all(input: &[f32], from: u32, to: u32, block: usize) -> Vec<f32> {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(block) {
            r.process(chunk, &mut out);
        }
        r.flush(&mut out);
        out
    }

    fn sine(rate: u32, freq: f64, secs: f64) -> Vec<f32> {
        (0..(rate as f64 * secs) as usize)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn output_length_is_exact_for_every_supported_rate() {
        for rate in [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000] {
            if rate == 16000 {
                continue;
            }
            let input = vec![0.1f32; rate as usize * 3 + 17];
            let out = resample_all(&input, rate, 16000, 1000);
            assert_eq!(
                out.len() as u64,
                (input.len() as u64 * 16000) / rate as u64,
                "{rate} Hz"
            );
        }
    }

    #[test]
    fn timing_is_sample_exact_an_impulse_stays_in_place() {
        for rate in [8000u32, 11025, 22050, 32000, 44100, 48000, 96000] {
            let mut input = vec![0.0f32; rate as usize * 2];
            let at = rate as usize * 3 / 4; // 0.75 s
            input[at] = 1.0;
            let out = resample_all(&input, rate, 16000, 777);
            let peak = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap()
                .0;
            // 0.75 s is not a whole input sample at 11.025 kHz: expect where `at` maps.
            let expected = (at as f64 * 16000.0 / rate as f64).round() as i64;
            assert!(
                (peak as i64 - expected).abs() <= 1,
                "{rate} Hz: impulse at {peak}, expected {expected}"
            );
        }
    }

    #[test]
    fn block_size_does_not_change_the_output() {
        let input = sine(44100, 1000.0, 1.5);
        let a = resample_all(&input, 44100, 16000, 1);
        let b = resample_all(&input, 44100, 16000, 4096);
        let c = resample_all(&input, 44100, 16000, 44100);
        assert_eq!(a, b);
        assert_eq!(b, c);
    }

    #[test]
    fn passband_is_kept_and_aliases_are_removed() {
        // 1 kHz passes at its level; 12 kHz (above the new Nyquist of 8 kHz) must vanish
        // instead of folding back to 4 kHz.
        let keep = resample_all(&sine(48000, 1000.0, 1.0), 48000, 16000, 480);
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        let mid = &keep[2000..14000];
        assert!(
            (rms(mid) - 0.5 / 2f32.sqrt()).abs() < 0.01,
            "rms {}",
            rms(mid)
        );
        let alias = resample_all(&sine(48000, 12000.0, 1.0), 48000, 16000, 480);
        assert!(
            rms(&alias[2000..14000]) < 1e-3,
            "alias rms {}",
            rms(&alias[2000..14000])
        );
    }

    fn gain_db(rate: u32, freq: f64) -> f32 {
        let out = resample_all(&sine(rate, freq, 2.0), rate, 16000, 4096);
        let mid = &out[4000..28000];
        let rms = (mid.iter().map(|v| v * v).sum::<f32>() / mid.len() as f32).sqrt();
        20.0 * (rms / (0.5 / 2f32.sqrt())).log10()
    }

    #[test]
    fn passband_reaches_the_top_mel_band() {
        // YAMNet's mel bands reach 7.5 kHz; a tone at 8.5 kHz would alias onto 7.5 kHz.
        for rate in [22050, 32000, 44100, 48000, 96000] {
            let pass = gain_db(rate, 7500.0);
            assert!(pass.abs() < 0.1, "{rate} Hz: {pass:.2} dB at 7.5 kHz");
            if rate > 17000 {
                let stop = gain_db(rate, 8500.0);
                assert!(stop < -60.0, "{rate} Hz: {stop:.1} dB at 8.5 kHz");
            }
        }
    }

    #[test]
    fn upsampling_keeps_the_band_and_removes_images() {
        // From 8 and 11.025 kHz: a tone near the input's Nyquist passes, and its image above
        // that Nyquist (what an interpolator without a filter leaves) is gone.
        for rate in [8000u32, 11025] {
            let top = rate as f64 * 0.45;
            let level = gain_db(rate, top);
            assert!(level.abs() < 0.1, "{rate} Hz: {level:.2} dB at {top} Hz");
            let out = resample_all(&sine(rate, top, 2.0), rate, 16000, 999);
            let mid = &out[4000..28000];
            let image = rate as f64 - top;
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (i, &v) in mid.iter().enumerate() {
                let ph = 2.0 * std::f64::consts::PI * image * i as f64 / 16000.0;
                re += v as f64 * ph.cos();
                im += v as f64 * ph.sin();
            }
            let amplitude = 2.0 * (re * re + im * im).sqrt() / mid.len() as f64;
            let db = 20.0 * (amplitude / 0.5).log10();
            assert!(db < -60.0, "{rate} Hz: image at {image} Hz is {db:.1} dB");
        }
    }

    #[test]
    fn no_click_at_chunk_boundaries() {
        // A pure tone resampled in tiny blocks must stay smooth: the second difference of a
        // 440 Hz sine at 16 kHz is bounded by A*(2*pi*440/16000)^2 ~ 0.015; a click is far more.
        let out = resample_all(&sine(44100, 440.0, 2.0), 44100, 16000, 100);
        let worst = out[1000..out.len() - 1000]
            .windows(3)
            .map(|w| (w[0] - 2.0 * w[1] + w[2]).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.02, "second difference {worst}");
    }
}
