// SPDX-License-Identifier: MPL-2.0

//! Per-class smoothing of window scores over the last K windows.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Smoothing {
    /// The window's own scores.
    None,
    /// Mean of the last K windows: steady labels for long sounds (speech, music).
    #[default]
    Mean,
    /// Maximum of the last K windows: keeps short events visible for K windows.
    Max,
    /// Exponential moving average with alpha = 2 / (K + 1), the span convention.
    Ema,
}

/// Keeps what a smoothing rule needs about recent windows, per class.
pub struct Smoother {
    mode: Smoothing,
    windows: usize,
    history: VecDeque<Vec<f32>>,
    ema: Option<Vec<f32>>,
    out: Vec<f32>,
}

impl Smoother {
    pub fn new(mode: Smoothing, windows: usize) -> Self {
        Self {
            mode,
            windows: windows.max(1),
            history: VecDeque::new(),
            ema: None,
            out: Vec::new(),
        }
    }

    pub fn reset(&mut self) {
        self.history.clear();
        self.ema = None;
    }

    /// Adds one window's scores and returns the smoothed scores, including this window.
    pub fn push(&mut self, scores: &[f32]) -> &[f32] {
        match self.mode {
            Smoothing::None => {
                self.out.clear();
                self.out.extend_from_slice(scores);
            }
            Smoothing::Ema => {
                let alpha = 2.0 / (self.windows as f32 + 1.0);
                let ema = self.ema.get_or_insert_with(|| scores.to_vec());
                for (e, &s) in ema.iter_mut().zip(scores) {
                    *e += alpha * (s - *e);
                }
                self.out.clear();
                self.out.extend_from_slice(ema);
            }
            Smoothing::Mean | Smoothing::Max => {
                if self.history.len() == self.windows {
                    self.history.pop_front();
                }
                self.history.push_back(scores.to_vec());
                self.out.clear();
                self.out.resize(
                    scores.len(),
                    if self.mode == Smoothing::Max {
                        f32::MIN
                    } else {
                        0.0
                    },
                );
                for h in &self.history {
                    for (o, &s) in self.out.iter_mut().zip(h) {
                        *o = if self.mode == Smoothing::Max {
                            o.max(s)
                        } else {
                            *o + s
                        };
                    }
                }
                if self.mode == Smoothing::Mean {
                    let n = self.history.len() as f32;
                    self.out.iter_mut().for_each(|o| *o /= n);
                }
            }
        }
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_max_cover_the_last_k_windows() {
        let mut mean = Smoother::new(Smoothing::Mean, 2);
        let mut max = Smoother::new(Smoothing::Max, 2);
        for (w, (m, x)) in [[1.0, 0.0], [0.0, 0.5], [0.0, 0.0]].iter().zip([
            ([1.0, 0.0], [1.0, 0.0]),
            ([0.5, 0.25], [1.0, 0.5]),
            ([0.0, 0.25], [0.0, 0.5]),
        ]) {
            assert_eq!(mean.push(w), m);
            assert_eq!(max.push(w), x);
        }
    }

    #[test]
    fn ema_follows_the_span_convention() {
        let mut ema = Smoother::new(Smoothing::Ema, 3); // alpha 0.5
        assert_eq!(ema.push(&[1.0]), [1.0]);
        assert_eq!(ema.push(&[0.0]), [0.5]);
        assert_eq!(ema.push(&[0.0]), [0.25]);
        ema.reset();
        assert_eq!(ema.push(&[0.0]), [0.0]);
    }

    #[test]
    fn none_passes_scores_through() {
        let mut s = Smoother::new(Smoothing::None, 5);
        assert_eq!(s.push(&[0.3, 0.7]), [0.3, 0.7]);
    }
}
