// SPDX-License-Identifier: MPL-2.0

//! An ONNX Runtime session for one model: loads it, reads its descriptor, runs batches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;

use super::descriptor::ModelDescriptor;
use super::provider::{Provider, SessionOptions};
use super::runtime;

#[derive(Debug)]
pub enum ModelError {
    Runtime(runtime::RuntimeError),
    Missing(PathBuf),
    Load { path: PathBuf, reason: String },
    Descriptor { path: PathBuf, reason: String },
    Run(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Runtime(e) => e.fmt(f),
            ModelError::Missing(p) => write!(
                f,
                "model file {} does not exist: run `bash scripts/setup.sh` in the audiotagger \
                 checkout to build the default YAMNet model (then `meson install` installs it \
                 with the plugin), or set the `model` property to an ONNX audio model. Without \
                 `model` the element looks for {} in {}",
                p.display(),
                super::locate::DEFAULT_MODEL,
                super::locate::model_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", then ")
            ),
            ModelError::Load { path, reason } => write!(
                f,
                "{} could not be loaded as an ONNX model ({reason}): check that the file is a \
                 complete .onnx file, or rebuild the default one with `bash scripts/setup.sh`",
                path.display()
            ),
            ModelError::Descriptor { path, reason } => write!(
                f,
                "{} has no usable audiotagger descriptor: {reason}. Add the keys to its \
                 metadata_props or to a sidecar {} (see README, \"Model descriptor\")",
                path.display(),
                ModelDescriptor::sidecar_path(path).display()
            ),
            ModelError::Run(reason) => write!(f, "inference failed: {reason}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// Scores (and embeddings, if the model has them) of one batch, row-major.
#[derive(Debug, Clone, Default)]
pub struct BatchOutput {
    pub scores: Vec<f32>,
    pub embeddings: Vec<f32>,
    pub embedding_dim: usize,
}

/// The one batch size a GPU session runs: every batch is padded to it with silent windows, and
/// larger ones run in pieces of it. ONNX Runtime's CUDA provider pays 0.3-0.6 s on an H100
/// whenever the batch size differs from the previous run's, sizes seen before included, where
/// a run of 64 in steady use takes 1.4 ms and one of 1 takes 0.8 ms (`cargo bench --bench gpu`,
/// "batch sizes").
pub const GPU_BATCH: usize = 64;

pub struct ModelSession {
    session: Session,
    descriptor: ModelDescriptor,
    provider: Provider,
    fallback: Option<String>,
    /// The batch size every run is padded to, if there is one (see [`ModelSession::batch_size`]).
    batch_size: Option<usize>,
}

/// The GPU providers to try for a request, best first.
fn gpu_candidates(requested: Provider) -> &'static [Provider] {
    match requested {
        Provider::Cpu => &[],
        Provider::Cuda => &[Provider::Cuda],
        Provider::TensorRt => &[Provider::TensorRt],
        Provider::Auto => &[Provider::TensorRt, Provider::Cuda],
    }
}

fn dispatch(
    provider: Provider,
    device_id: u32,
) -> Result<ort::ep::ExecutionProviderDispatch, String> {
    use ort::ep::ExecutionProvider as _;
    use ort::ep::cuda::ConvAlgorithmSearch;
    let device_id = device_id as i32;
    let (available, ep) = match provider {
        Provider::Cuda => (
            ort::ep::CUDA::is_available(),
            ort::ep::CUDA::default()
                .with_device_id(device_id)
                // ONNX Runtime's default, exhaustive, times every cuDNN algorithm at each new
                // shape: on an H100 a pass over batch sizes 1..=64 took 48 s with it and 19 s
                // with the heuristic's pick, and batches of 64 with a last one of 40 ran at 2131
                // against 6005 windows/s.
                .with_conv_algorithm_search(ConvAlgorithmSearch::Heuristic)
                .build(),
        ),
        Provider::TensorRt => (
            ort::ep::TensorRT::is_available(),
            ort::ep::TensorRT::default()
                .with_device_id(device_id)
                .build(),
        ),
        Provider::Cpu | Provider::Auto => unreachable!("not a GPU provider"),
    };
    match available {
        Ok(true) => Ok(ep.error_on_failure()),
        Ok(false) => Err(format!(
            "this ONNX Runtime build has no {provider} provider (the `onnxruntime` wheel is \
             CPU-only: install `onnxruntime-gpu` and point ORT_DYLIB_PATH or `ort-library` at \
             its library)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The model's declared input shape must take the descriptor's features and its scores output
/// must have one column per label: otherwise every window would fail at run time, or scores
/// would be read against the wrong labels. Dimensions the model leaves open (-1) match anything.
fn check_shapes(session: &Session, d: &ModelDescriptor) -> Result<(), String> {
    let fits = |declared: &[i64], wanted: &[usize]| {
        declared.len() == wanted.len()
            && declared
                .iter()
                .zip(wanted)
                .all(|(&have, &want)| have < 0 || have as usize == want)
    };
    if let Some(input) = declared_shape(session.inputs(), &d.input_name) {
        let features = d.frontend.feature_shape();
        if !fits(&input[1.min(input.len())..], &features) {
            return Err(format!(
                "input {:?} has shape {input:?} but the descriptor's front-end gives windows of \
                 shape [batch, {}]: the descriptor (window_samples, input_kind, mel.*) does not \
                 describe this model; fix the descriptor or its sidecar JSON",
                d.input_name,
                features
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if let Some(scores) = declared_shape(session.outputs(), &d.scores_output)
        && let Some(&classes) = scores.last()
        && classes >= 0
        && classes as usize != d.num_classes()
    {
        return Err(format!(
            "output {:?} has {classes} classes but the descriptor lists {} labels; fix the \
             descriptor's labels",
            d.scores_output,
            d.num_classes()
        ));
    }
    Ok(())
}

/// The shape the model declares for the tensor `name` among `outlets`; -1 where it is open.
fn declared_shape(outlets: &[ort::value::Outlet], name: &str) -> Option<Vec<i64>> {
    outlets
        .iter()
        .find(|o| o.name() == name)
        .and_then(|o| o.dtype().tensor_shape())
        .map(|s| s.to_vec())
}

/// The batch dimension `input` declares, if it is a fixed size rather than left open.
fn declared_batch(session: &Session, input: &str) -> Option<usize> {
    let declared = *declared_shape(session.inputs(), input)?.first()?;
    usize::try_from(declared).ok().filter(|&n| n > 0)
}

/// Runs the windows in `features` through `run` in batches of exactly `size`, the last one
/// padded with silent windows, and returns the rows of the real windows only.
fn run_in_batches_of(
    size: usize,
    features: &[f32],
    per_window: usize,
    mut run: impl FnMut(&[f32], usize) -> Result<BatchOutput, ModelError>,
) -> Result<BatchOutput, ModelError> {
    let mut out = BatchOutput::default();
    let mut padded = Vec::new();
    for piece in features.chunks(size * per_window) {
        let windows = piece.len() / per_window;
        let part = if windows == size {
            run(piece, size)?
        } else {
            padded.clear();
            padded.extend_from_slice(piece);
            padded.resize(size * per_window, 0.0);
            run(&padded, size)?
        };
        let classes = part.scores.len() / size;
        out.scores
            .extend_from_slice(&part.scores[..windows * classes]);
        out.embedding_dim = part.embedding_dim;
        out.embeddings
            .extend_from_slice(&part.embeddings[..windows * part.embedding_dim]);
    }
    Ok(out)
}

impl ModelSession {
    /// Loads `path`. A GPU provider that cannot be used here falls back to the CPU; the reason
    /// is kept in [`ModelSession::fallback`] for the caller to report.
    pub fn load(path: &Path, options: &SessionOptions) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::Missing(path.to_path_buf()));
        }
        runtime::ensure_loaded(None).map_err(ModelError::Runtime)?;
        let env = runtime::environment().expect("loaded above");
        let load_err = |e: &dyn std::fmt::Display| ModelError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let builder = || -> Result<ort::session::builder::SessionBuilder, ModelError> {
            let mut b = Session::builder(env).map_err(|e| load_err(&e))?;
            if options.threads > 0 {
                b = b
                    .with_intra_threads(options.threads as usize)
                    .map_err(|e| load_err(&e))?;
            }
            if !options.spinning {
                b = b.with_intra_op_spinning(false).map_err(|e| load_err(&e))?;
            }
            Ok(b)
        };
        let mut reasons = Vec::new();
        for &candidate in gpu_candidates(options.provider) {
            let attempt = dispatch(candidate, options.device_id).and_then(|ep| {
                builder()
                    .map_err(|e| e.to_string())?
                    .with_execution_providers([ep])
                    .map_err(|e| e.to_string())?
                    .commit_from_file(path)
                    .map_err(|e| e.to_string())
            });
            match attempt {
                Ok(session) => return Self::finish(session, path, candidate, None, options),
                Err(e) => reasons.push(format!("{candidate}: {e}")),
            }
        }
        let session = builder()?
            .commit_from_file(path)
            .map_err(|e| load_err(&e))?;
        let fallback = (!reasons.is_empty()).then(|| reasons.join("; "));
        Self::finish(session, path, Provider::Cpu, fallback, options)
    }

    fn finish(
        session: Session,
        path: &Path,
        provider: Provider,
        fallback: Option<String>,
        options: &SessionOptions,
    ) -> Result<Self, ModelError> {
        let mut descriptor = Self::read_descriptor(&session, path)?;
        if let Some(samples) = options.window_samples {
            let bad = |reason: String| ModelError::Descriptor {
                path: path.to_path_buf(),
                reason,
            };
            let refused = |reason: String| {
                bad(format!(
                    "windows of {samples} samples were asked for, which this model cannot take \
                     (a waveform model, or a log-mel one whose frame axis is open, can): {reason}"
                ))
            };
            descriptor.frontend.window_samples = samples;
            descriptor.frontend.hop_samples = samples;
            descriptor.frontend.validate().map_err(refused)?;
            check_shapes(&session, &descriptor).map_err(refused)?;
        }
        if let Some(hop) = options.hop_samples {
            descriptor.frontend = descriptor.frontend.with_hop_samples(hop);
        }
        let batch_size = declared_batch(&session, &descriptor.input_name)
            .or((provider != Provider::Cpu).then_some(GPU_BATCH));
        Ok(Self {
            session,
            descriptor,
            provider,
            fallback,
            batch_size,
        })
    }

    /// The provider the session runs on: `Cpu`, `Cuda` or `TensorRt`, never `Auto`.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Why the requested GPU provider was not used, when it was not.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    fn read_descriptor(session: &Session, path: &Path) -> Result<ModelDescriptor, ModelError> {
        let bad = |reason: String| ModelError::Descriptor {
            path: path.to_path_buf(),
            reason,
        };
        let meta = session.metadata().map_err(|e| bad(e.to_string()))?;
        let mut props = HashMap::new();
        for key in meta.custom_keys().map_err(|e| bad(e.to_string()))? {
            if let Some(v) = meta.custom(&key) {
                props.insert(key, v);
            }
        }
        let sidecar = ModelDescriptor::sidecar_path(path);
        if sidecar.is_file() {
            let json = std::fs::read_to_string(&sidecar)
                .map_err(|e| bad(format!("{}: {e}", sidecar.display())))?;
            ModelDescriptor::apply_sidecar(&mut props, &json).map_err(|e| bad(e.0))?;
        }
        let d = ModelDescriptor::from_props(&props).map_err(|e| bad(e.0))?;
        let has =
            |name: &str, outlets: &[ort::value::Outlet]| outlets.iter().any(|o| o.name() == name);
        if !has(&d.input_name, session.inputs()) {
            return Err(bad(format!(
                "the model has no input named {:?}",
                d.input_name
            )));
        }
        if !has(&d.scores_output, session.outputs()) {
            return Err(bad(format!(
                "the model has no output named {:?}",
                d.scores_output
            )));
        }
        if let Some(e) = d
            .embedding_output
            .as_deref()
            .filter(|e| !has(e, session.outputs()))
        {
            return Err(bad(format!("the model has no output named {e:?}")));
        }
        check_shapes(session, &d).map_err(bad)?;
        Ok(d)
    }

    pub fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    /// The one batch size this session runs, if it has one: the model's own when its input
    /// declares a fixed batch dimension (an export for batch 1 takes nothing else), else
    /// [`GPU_BATCH`] on a GPU. `None`: any batch size runs as it is.
    pub fn batch_size(&self) -> Option<usize> {
        self.batch_size
    }

    /// Runs `batch` windows whose features are concatenated in `features`, in batches of
    /// [`ModelSession::batch_size`] where there is one.
    pub fn run(
        &mut self,
        features: &[f32],
        batch: usize,
        want_embeddings: bool,
    ) -> Result<BatchOutput, ModelError> {
        let per_window: usize = self.descriptor.frontend.feature_shape().iter().product();
        match self.batch_size {
            Some(size) if batch != 0 && batch != size && features.len() == batch * per_window => {
                run_in_batches_of(size, features, per_window, |f, n| {
                    self.run_exact(f, n, want_embeddings)
                })
            }
            _ => self.run_exact(features, batch, want_embeddings),
        }
    }

    /// [`ModelSession::run`] with the batch as given, whatever the provider.
    pub fn run_exact(
        &mut self,
        features: &[f32],
        batch: usize,
        want_embeddings: bool,
    ) -> Result<BatchOutput, ModelError> {
        let shape: Vec<i64> = std::iter::once(batch as i64)
            .chain(
                self.descriptor
                    .frontend
                    .feature_shape()
                    .into_iter()
                    .map(|d| d as i64),
            )
            .collect();
        let per_window: usize = self.descriptor.frontend.feature_shape().iter().product();
        if features.len() != batch * per_window {
            return Err(ModelError::Run(format!(
                "{} features for {batch} windows of {per_window}",
                features.len()
            )));
        }
        let input = TensorRef::from_array_view((shape, features))
            .map_err(|e| ModelError::Run(e.to_string()))?;
        let d = &self.descriptor;
        let outputs = self
            .session
            .run(ort::inputs![d.input_name.as_str() => input])
            .map_err(|e| ModelError::Run(e.to_string()))?;
        let (_, scores) = outputs[d.scores_output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Run(e.to_string()))?;
        let classes = d.num_classes();
        if scores.len() != batch * classes {
            return Err(ModelError::Run(format!(
                "the model returned {} scores for {batch} windows of {classes} classes",
                scores.len()
            )));
        }
        let mut out = BatchOutput {
            scores: if d.scores_are_probabilities {
                scores.to_vec()
            } else {
                scores.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect()
            },
            ..Default::default()
        };
        if let (true, Some(name)) = (want_embeddings, d.embedding_output.as_deref()) {
            let (_, e) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| ModelError::Run(e.to_string()))?;
            out.embedding_dim = e.len() / batch.max(1);
            out.embeddings = e.to_vec();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in model: per window, scores are (its first feature, the batch size it ran in)
    /// and the embedding is its second feature.
    fn fake(features: &[f32], batch: usize) -> Result<BatchOutput, ModelError> {
        let per_window = features.len() / batch;
        Ok(BatchOutput {
            scores: features
                .chunks(per_window)
                .flat_map(|w| [w[0], batch as f32])
                .collect(),
            embeddings: features.chunks(per_window).map(|w| w[1]).collect(),
            embedding_dim: 1,
        })
    }

    #[test]
    fn batches_run_at_one_size_and_return_only_the_real_windows() {
        let per_window = 3;
        for windows in [1, 7, 8, 9, 17, 24] {
            let features: Vec<f32> = (0..windows * per_window).map(|i| i as f32).collect();
            let mut runs = 0;
            let out = run_in_batches_of(8, &features, per_window, |f, n| {
                runs += 1;
                assert_eq!(f.len(), n * per_window);
                fake(f, n)
            })
            .unwrap();
            assert_eq!(runs, windows.div_ceil(8), "{windows} windows");
            assert_eq!(out.scores.len(), windows * 2);
            assert_eq!(out.embeddings.len(), windows);
            for w in 0..windows {
                let first = (w * per_window) as f32;
                assert_eq!(out.scores[2 * w], first, "window {w} of {windows}");
                assert_eq!(out.scores[2 * w + 1], 8.0, "every run holds 8 windows");
                assert_eq!(out.embeddings[w], first + 1.0);
            }
        }
    }
}
