// SPDX-License-Identifier: MPL-2.0

//! The signal log-mel frames are cut from: the model-rate stream after pre-emphasis, with its
//! start and end padded when frames are centred, so that frame `i` is always the
//! `frame_length` samples from position `i · frame_hop`.
//!
//! Centring and padding belong to the stream, not to each window: a frame is computed once
//! however many windows share it, and a window inside the stream sees the audio around it
//! where a clip cut out alone would see its own reflection. A window that is the whole stream
//! gets exactly the reference's features for that clip.

use super::mel::{Centre, MelParams};

pub struct MelInput {
    preemphasis: Option<f32>,
    previous: Option<f32>,
    centre: Centre,
    /// Padding before the first sample; samples after the last one once the stream ends.
    before: usize,
    after: usize,
    /// Samples held until there are enough to reflect the start.
    head: Vec<f32>,
    started: bool,
    ended: bool,
    /// `signal[0]` is frame-input position `base`.
    signal: Vec<f32>,
    base: u64,
    /// Real (pre-emphasised) samples received, padding excluded.
    received: u64,
}

/// numpy's `reflect` index for position `i` of a signal of `len` samples, `len` > 0.
fn reflect(i: i64, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as i64 - 1);
    let i = i.rem_euclid(period);
    (if i < len as i64 { i } else { period - i }) as usize
}

impl MelInput {
    pub fn new(p: &MelParams) -> Self {
        let before = p.samples_before_centre();
        let centred = p.centre != Centre::None;
        Self {
            preemphasis: (p.preemphasis != 0.0).then_some(p.preemphasis as f32),
            previous: None,
            centre: p.centre,
            before,
            after: if centred { p.frame_length - before } else { 0 },
            head: Vec::new(),
            started: !centred,
            ended: false,
            signal: Vec::new(),
            base: 0,
            received: 0,
        }
    }

    /// Frame-input position one past the last sample.
    pub fn end(&self) -> u64 {
        self.base + self.signal.len() as u64
    }

    /// The samples from frame-input position `from`, which must still be kept.
    pub fn from(&self, from: u64) -> &[f32] {
        &self.signal[(from - self.base) as usize..]
    }

    pub fn push(&mut self, samples: &[f32]) {
        if self.ended {
            return;
        }
        let target = if self.started {
            &mut self.signal
        } else {
            &mut self.head
        };
        let before = target.len();
        match self.preemphasis {
            Some(c) => {
                for &x in samples {
                    if let Some(p) = self.previous {
                        target.push(x - c * p);
                    }
                    self.previous = Some(x);
                }
            }
            None => target.extend_from_slice(samples),
        }
        self.received += (target.len() - before) as u64;
        if !self.started && (self.head.len() > self.before || self.centre == Centre::Zeros) {
            self.start();
        }
    }

    /// Writes the start padding and moves the held samples behind it.
    fn start(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.signal.extend(
            (1..=self.before)
                .rev()
                .map(|k| match (self.centre, head.is_empty()) {
                    (Centre::Reflect, false) => head[reflect(k as i64, head.len())],
                    _ => 0.0,
                }),
        );
        self.signal.extend_from_slice(&head);
        self.started = true;
    }

    /// Ends the stream: pads its end as the frames' centring asks.
    pub fn finish(&mut self) {
        if self.ended {
            return;
        }
        if !self.started {
            self.start();
        }
        self.ended = true;
        if self.after == 0 {
            return;
        }
        // Real samples are the signal from `before` on; those still kept start here.
        let real = self.received as usize;
        let kept_from = (self.base as usize).max(self.before);
        let pad: Vec<f32> = (1..=self.after)
            .map(|k| match self.centre {
                Centre::Reflect if real > 0 => {
                    let i = reflect((real - 1 + k) as i64, real) + self.before;
                    // Reflection reaches back at most `after` samples, which are always kept.
                    self.signal[i.max(kept_from) - self.base as usize]
                }
                _ => 0.0,
            })
            .collect();
        self.signal.extend_from_slice(&pad);
    }

    /// Forgets the samples before frame-input position `pos` that no frame still needs,
    /// keeping what the end's reflection may read.
    pub fn trim(&mut self, pos: u64) {
        let keep_tail = (self.after + 1) as u64;
        let pos = pos.min(self.end().saturating_sub(keep_tail));
        if pos > self.base {
            let drop = (pos - self.base) as usize;
            // As often as the kept samples are outnumbered, so moving them stays cheap.
            if drop >= self.signal.len() - drop {
                self.signal.drain(..drop);
                self.base = pos;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centred(preemphasis: f64, centre: Centre) -> MelParams {
        MelParams {
            preemphasis,
            centre,
            frame_length: 8,
            fft_length: 8,
            frame_hop: 4,
            ..MelParams::yamnet()
        }
    }

    fn all(p: &MelParams, x: &[f32], block: usize) -> Vec<f32> {
        let mut m = MelInput::new(p);
        for c in x.chunks(block) {
            m.push(c);
        }
        m.finish();
        m.from(0).to_vec()
    }

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(4), 6, mode="reflect")
        let want = [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3];
        let got: Vec<usize> = (-6..10).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn centred_signal_is_the_stream_padded_by_reflection() {
        let x: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let p = centred(0.0, Centre::Reflect);
        // torch.stft(center=True) pads n_fft/2 = 4 on each side with reflection.
        let want = [
            4., 3., 2., 1., 0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 8., 7., 6., 5.,
        ];
        for block in [1, 3, 100] {
            assert_eq!(all(&p, &x, block), want);
        }
        let z = centred(0.0, Centre::Zeros);
        let got = all(&z, &x, 3);
        assert_eq!(&got[..4], &[0.0; 4]);
        assert_eq!(&got[14..], &[0.0; 4]);
    }

    #[test]
    fn pre_emphasis_is_the_difference_with_the_next_sample() {
        let x = [1.0f32, 2.0, 4.0, 8.0];
        let p = MelParams {
            preemphasis: 0.5,
            ..MelParams::yamnet()
        };
        assert_eq!(all(&p, &x, 1), [1.5, 3.0, 6.0]);
    }

    #[test]
    fn streams_too_short_to_reflect_still_pad() {
        let p = centred(0.0, Centre::Reflect);
        assert_eq!(
            all(&p, &[1.0, 2.0], 1),
            [1., 2., 1., 2., 1., 2., 1., 2., 1., 2.]
        );
        assert_eq!(all(&p, &[], 1), [0.0; 8]);
    }

    #[test]
    fn trimming_keeps_what_the_end_reflects() {
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let p = centred(0.0, Centre::Reflect);
        let mut m = MelInput::new(&p);
        m.push(&x);
        m.trim(1000);
        m.finish();
        let end = m.end();
        assert_eq!(m.from(end - 5), &[99., 98., 97., 96., 95.]);
    }
}
