"""Independent Python references for YAMNet, used by the parity tests and the fixture generator.

- `log_mel`: YAMNet's published float front-end, written in numpy from the published parameters
  (tensorflow/models research/audioset/yamnet/params.py and features.py, as summarised in
  ../shared/docs/DESIGN.md), computed in float64. It shares no code with the Rust front-end.
- `TfliteYamnet`: the official TF-Lite file through ai-edge-litert, exposing its own internal
  log-mel patch and intermediate layers.
- `load_wav` / `to_16k_mono`: the real recordings in ../shared/audio, read with the standard
  library and resampled with soxr (a band-limited resampler).
"""
from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
FRAME_LENGTH = 400
FRAME_HOP = 160
FFT_LENGTH = 512
BANDS = 64
FMIN, FMAX = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48
WINDOW_SAMPLES = (PATCH_FRAMES - 1) * FRAME_HOP + FRAME_LENGTH  # 15600
HOP_SAMPLES = PATCH_HOP_FRAMES * FRAME_HOP  # 7680
TFLITE_MEL_SCALE = 0.00784401036798954

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[257, 64] HTK triangles in the mel domain, DC row zeroed, no area normalisation."""
    bins_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT_LENGTH // 2 + 1))
    edges = np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    w = np.maximum(0.0, np.minimum(rising, falling))
    w[0, :] = 0.0
    return w


def periodic_hann(n: int = FRAME_LENGTH) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """[frames, 64] float64 log-mel of a 16 kHz mono waveform; frames = 1 + (N - 400) // 160."""
    x = np.asarray(waveform, np.float64)
    if x.size < FRAME_LENGTH:
        return np.zeros((0, BANDS))
    n_frames = 1 + (x.size - FRAME_LENGTH) // FRAME_HOP
    idx = np.arange(FRAME_LENGTH)[None, :] + FRAME_HOP * np.arange(n_frames)[:, None]
    spectrum = np.abs(np.fft.rfft(x[idx] * periodic_hann(), n=FFT_LENGTH, axis=1))
    return np.log(spectrum @ mel_matrix() + LOG_OFFSET)


def patches(logmel: np.ndarray, hop_frames: int = PATCH_HOP_FRAMES) -> np.ndarray:
    """[windows, 96, 64]: patches cut from one continuous frame stream, first at frame 0."""
    if logmel.shape[0] < PATCH_FRAMES:
        return np.zeros((0, PATCH_FRAMES, BANDS))
    starts = range(0, logmel.shape[0] - PATCH_FRAMES + 1, hop_frames)
    return np.stack([logmel[s:s + PATCH_FRAMES] for s in starts])


def windows(waveform: np.ndarray, hop: int = HOP_SAMPLES) -> np.ndarray:
    """[windows, 15600] sample windows, first at sample 0, last one complete."""
    if waveform.size < WINDOW_SAMPLES:
        return np.zeros((0, WINDOW_SAMPLES), np.float32)
    starts = range(0, waveform.size - WINDOW_SAMPLES + 1, hop)
    return np.stack([waveform[s:s + WINDOW_SAMPLES] for s in starts])


def load_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV as float32 [frames, channels] in [-1, 1) and its rate."""
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is expected in the shared set")
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
        return data.astype(np.float32) / 32768.0, w.getframerate()


def to_16k_mono(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ")
    return np.ascontiguousarray(mono, np.float32)


def shared_clips(limit: int | None = None) -> list[Path]:
    """The real recordings of ../shared/audio, in manifest order."""
    import csv

    manifest = SHARED / "audio" / "manifest.csv"
    with manifest.open(newline="") as f:
        files = [SHARED / "audio" / row["file"] for row in csv.DictReader(f)]
    return files[:limit] if limit else files


def synthetic_signals(seed: int = 0) -> dict[str, np.ndarray]:
    """Noise, tones and silence, 2 s each at 16 kHz, for the cases recordings rarely cover."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    return {
        "white_noise": (0.3 * rng.standard_normal(t.size)).clip(-1, 1).astype(np.float32),
        "pink_ish_noise": (np.cumsum(rng.standard_normal(t.size)) * 0.002).astype(np.float32),
        "tone_440": (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "tone_3k": (0.25 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32),
        "chirp": (0.4 * np.sin(2 * np.pi * (100 + 1900 * t) * t)).astype(np.float32),
        "silence": np.zeros(t.size, np.float32),
    }


class TfliteYamnet:
    """The official TF-Lite YAMNet, one 15600-sample window per call, internals preserved."""

    LOG_MEL = "yamnet_frames/tf_op_layer_Log/Log"
    EMBEDDING = "yamnet_frames/global_average_pooling2d/Mean"
    FLOAT_LAYERS = ("layer1_conv", "layer2_depthwise_conv", "layer3_depthwise_conv")

    def __init__(self, path: Path = SHARED / "models" / "yamnet.tflite", reference_kernels: bool = False):
        """`reference_kernels`: TF-Lite's BUILTIN_REF kernels instead of its default path."""
        import warnings

        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # preserve_all_tensors is meant for exactly this
            self.it = Interpreter(str(path), experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=resolver)
        self.it.allocate_tensors()
        self.input = self.it.get_input_details()[0]["index"]
        self.output = self.it.get_output_details()[0]["index"]
        self.by_prefix = {d["name"]: d["index"] for d in self.it.get_tensor_details()}
        # Every ReLU output, keyed by the ONNX tensor name the converter gives that layer.
        self.layers = {}
        for name, idx in self.by_prefix.items():
            m = re.match(r"yamnet_frames/(layer\d+)/(?:(depthwise_conv|pointwise_conv)/)?relu/Relu", name)
            if m:
                self.layers[f"{m.group(1)}_{m.group(2) or 'conv'}"] = idx

    def _tensor(self, prefix: str) -> np.ndarray:
        for name, idx in self.by_prefix.items():
            if name.startswith(prefix):
                return self.it.get_tensor(idx)
        raise KeyError(prefix)

    def run(self, window: np.ndarray) -> dict[str, np.ndarray]:
        self.it.set_tensor(self.input, np.asarray(window, np.float32))
        self.it.invoke()
        out = {
            "scores": self.it.get_tensor(self.output)[0].copy(),
            "log_mel": self._tensor(self.LOG_MEL).copy(),
            "embedding": self._tensor(self.EMBEDDING)[0].copy(),
        }
        for onnx_name, idx in self.layers.items():
            out[onnx_name] = self.it.get_tensor(idx)[0].transpose(2, 0, 1).copy()  # NHWC -> CHW
        return out


def _session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def onnx_session(model_path: Path):
    """An ONNX Runtime CPU session on one thread, as the element runs it by default."""
    import onnx

    return _session(onnx.load(str(model_path)))


def layer_sessions(model_path: Path) -> dict[str, tuple[str, object]]:
    """For each ReLU output of the model: (the tensor feeding that layer, a session that runs
    just that layer), so a layer can be fed the TF-Lite model's own input to it."""
    import onnx
    from onnx import utils

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    extractor = utils.Extractor(model)
    out, prev = {}, "log_mel"
    for node in model.graph.node:
        if node.op_type == "Relu":
            out[node.output[0]] = (prev, _session(extractor.extract_model([prev], [node.output[0]])))
            prev = node.output[0]
    return out
