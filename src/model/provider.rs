// SPDX-License-Identifier: MPL-2.0

//! Execution providers: what the user asks for and what a session actually got.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Provider {
    #[default]
    Cpu,
    Cuda,
    TensorRt,
    /// TensorRT, then CUDA, then the CPU: whatever this machine has.
    Auto,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
            Provider::Auto => "auto",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a session should run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionOptions {
    pub provider: Provider,
    pub device_id: u32,
    /// Intra-op threads; 0 leaves ONNX Runtime's default (one per core).
    pub threads: u32,
    /// Whether ONNX Runtime's pool threads spin between parallel sections (its default). Off by
    /// default: in a pipeline the spinning takes the cores the streaming threads need (with 2
    /// threads on 2 cores, 8-17 % less throughput with it on, in `mode=queued`).
    pub spinning: bool,
    /// Windows of this many samples, and a hop of as many, instead of the descriptor's, for a
    /// model whose input takes any length: a waveform model, or a log-mel one whose frame
    /// axis is open (the second look's model runs looks of the length asked for).
    pub window_samples: Option<usize>,
    /// A hop of about this many samples (whole frames) instead of the descriptor's.
    pub hop_samples: Option<usize>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            provider: Provider::Cpu,
            device_id: 0,
            threads: 1,
            spinning: false,
            window_samples: None,
            hop_samples: None,
        }
    }
}
