"""Training data for the heads: labelled recordings, a split by source recording, augmented
mixtures, and the backbone's features for every window of them.

Everything here is seeded and runs in a fixed order, so the same inputs give the same features.
"""
from __future__ import annotations

import csv
import hashlib
import re
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert_yamnet  # noqa: E402
import yamnet_reference as ref  # noqa: E402

RATE = ref.SAMPLE_RATE
WINDOW = ref.WINDOW_SAMPLES
# Windows are cut from mixtures every 0.24 s: twice the element's default density, so every
# event is seen at several positions inside a window.
TRAIN_HOP = 3840

# Real recordings any Debian machine can install (scripts/setup.sh does): music on hold, spoken
# prompts and desktop alert sounds, used as more backgrounds and negatives. None is in
# ../shared/audio, which the event bench measures on.
DEBIAN_DIRS = (
    Path("/usr/share/asterisk/moh"),
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
    Path("/usr/share/sounds/freedesktop/stereo"),
)


@dataclass
class Clip:
    path: Path
    label: str
    recording: str
    licence: str = ""
    audio: np.ndarray | None = field(default=None, repr=False)


def recording_id(label: str, source: str, path: Path) -> str:
    """The original recording a clip was cut from, so that no recording is on both sides of the
    split: sources ship 1 s or 3 s pieces of longer recordings under different file names."""
    name = (source.split(":", 1)[1] if ":" in source else source) or path.name
    name = re.sub(r"\s*\[(segment|window)[^\]]*\]\s*$", "", name)
    base = name.rsplit("/", 1)[-1]
    # Edge Impulse exports: "<label>.<kind>.<recording>.ingestion-..." (1 s segments "sN",
    # "_chunkN" pieces, or "<file>.wav.<offset>.wav" background cuts).
    m = re.match(r"(.*?)\.ingestion-", base)
    if m:
        base = re.sub(r"\.wav\.\d+\.wav\..*$|_nohash_\d+\.wav\..*$", "", m.group(1))
        base = re.sub(r"\.orig_(train|test)\.", ".", base)  # one noise file, two folders
        return f"{label}:{base}"
    m = re.match(r"(\d+)-\d+-\d+-\d+\.wav$", base)  # UrbanSound8K: fsID-class-occurrence-slice
    if m:
        return f"us8k:{m.group(1)}"
    m = re.match(r"\d+-(\d+)-[A-Z]+(?:-\d+)?(?:_part\d+)?\.\w+$", base)  # ESC-10/50: fold-clip-take
    if m:
        return f"esc:{m.group(1)}"
    m = re.match(r"(.+?)_part\d+(?:s\d+)?\.\w+$", base)  # AudioSet cuts: <youtube id>_partN
    if m:
        return f"yt:{m.group(1)}"
    m = re.match(r"([A-Z0-9]{4})_\d+_", base)  # Nonverbal Vocalization: speaker code first
    if m:
        return f"speaker:{m.group(1)}"
    stem = re.sub(r"\.\w+$", "", base)
    return f"{label}:{stem}"


def rank(recording: str, seed: int) -> float:
    """Where a recording falls in [0, 1) for the split: a hash of its id and the seed."""
    digest = hashlib.sha256(f"{seed}:{recording}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_folder(root: Path) -> list[Clip]:
    """Labelled clips: one sub-folder per label; `manifest.csv` (file, label, source, license)
    gives each clip's source recording where it exists, else each file is its own recording."""
    manifest = root / "manifest.csv"
    clips: list[Clip] = []
    if manifest.exists():
        with manifest.open(newline="") as f:
            for row in csv.DictReader(f):
                path = root / row["file"]
                clips.append(Clip(path, row["label"], recording_id(row["label"], row.get("source", ""), path),
                                  row.get("license", "")))
    else:
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in sorted(d.glob("*.wav")):
                clips.append(Clip(path, d.name, f"{d.name}:{path.stem}"))
    if not clips:
        raise FileNotFoundError(f"{root}: no labelled WAV files (expected one sub-folder per label)")
    return clips


def split(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Whole recordings to validation, about `fraction` of each label's recordings, and at least
    one recording per label wherever a label has two or more."""
    train, val = [], []
    by_label: dict[str, list[str]] = {}
    for c in clips:
        by_label.setdefault(c.label, [])
        if c.recording not in by_label[c.label]:
            by_label[c.label].append(c.recording)
    held: set[str] = set()
    for label, recs in by_label.items():
        chosen = {r for r in recs if rank(r, seed) < fraction}
        if not chosen and len(recs) >= 2:
            chosen = {min(recs, key=lambda r: rank(r, seed))}
        if len(chosen) == len(recs) and len(recs) >= 2:
            chosen.discard(max(recs, key=lambda r: rank(r, seed)))
        held |= chosen
    for c in clips:
        (val if c.recording in held else train).append(c)
    return train, val


def load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32: WAV read directly, anything else decoded by GStreamer."""
    if path.suffix == ".wav":
        try:
            with wave.open(str(path)) as w:
                if w.getsampwidth() == 2:
                    data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
                    return ref.to_16k_mono(data.astype(np.float32) / 32768.0, w.getframerate())
        except wave.Error:
            pass
    return convert_yamnet.decode_16k_mono(path).copy()


def debian_clips() -> list[Clip]:
    """The Debian recordings, each file its own recording, labelled by what it is."""
    out = []
    for d, label in zip(DEBIAN_DIRS, ("bg_music_moh", "bg_speech_prompts", "alerts")):
        for path in sorted(d.glob("*")) if d.is_dir() else []:
            if path.suffix in (".wav", ".oga", ".ogg"):
                out.append(Clip(path, label, f"debian:{path.name}", "Debian package (free licence)"))
    return out


def active_region(x: np.ndarray) -> tuple[int, int]:
    """First and last 10 ms frame within 25 dB of the loudest, in samples (as the bench)."""
    frame = RATE // 100
    n = max(1, x.size // frame)
    levels = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    on = np.nonzero(levels >= levels.max() * 10 ** (-25 / 20))[0]
    return int(on[0] * frame), int(min((on[-1] + 1) * frame, x.size))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def mix(background: np.ndarray, event: np.ndarray, at: int, snr_db: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The event added at `at` into `background` at `snr_db` over the event's active part (None:
    the event alone), and the event's own track as mixed, for labelling windows."""
    out = background.copy()
    track = np.zeros_like(out)
    ev = event[: max(0, out.size - at)]
    a, b = active_region(ev) if ev.size else (0, 0)
    if snr_db is None:
        out[:] = 0.0
        gain = 1.0
    else:
        bg = max(rms(out[at + a: at + b]), 1e-5)
        gain = bg * 10 ** (snr_db / 20) / max(rms(ev[a:b]), 1e-9)
    track[at: at + ev.size] = gain * ev
    out += track
    return out, track


def scale_to_peak(x: np.ndarray, *others: np.ndarray, peak_db: float) -> None:
    """Scale in place to a peak of `peak_db` dBFS, as a recorder's gain would; never clip."""
    peak = float(np.abs(x).max())
    if peak > 0:
        g = 10 ** (peak_db / 20) / peak
        for y in (x, *others):
            y *= g


def window_starts(n: int, hop: int = TRAIN_HOP, window: int = WINDOW) -> range:
    return range(0, max(0, n - window) + 1, hop)


def window_labels(track: np.ndarray, mixture: np.ndarray, starts, window: int = WINDOW) -> np.ndarray:
    """Per window: 1 where the window holds a good part of the event (its energy there at least a
    quarter of the best window's and not buried: within 20 dB below the window's mixture), 0 where
    it holds none of it, -1 (left out of training) otherwise: a clip's quieter parts are often
    more of the same sound (a second shot, an echo), so they are no negatives."""
    e = np.array([np.sum(np.square(track[s: s + window], dtype=np.float64)) for s in starts])
    m = np.array([np.sum(np.square(mixture[s: s + window], dtype=np.float64)) for s in starts])
    best = e.max() if e.size else 0.0
    if best <= 0:
        return np.zeros(len(starts), np.int8)
    lab = np.full(len(starts), -1, np.int8)
    lab[(e >= 0.25 * best) & (e >= 0.01 * m)] = 1
    lab[e <= 1e-9 * best] = 0
    return lab


_MEL = ref.mel_matrix()
_HANN = ref.periodic_hann()


def log_mel_patches(windows: np.ndarray) -> np.ndarray:
    """[n, 96, 64] log-mel patches of [n, 15600] windows: `yamnet_reference.log_mel` (float64,
    the published definition) for a whole batch at once."""
    frames = np.lib.stride_tricks.sliding_window_view(windows.astype(np.float64), ref.FRAME_LENGTH, axis=1)
    frames = frames[:, :: ref.FRAME_HOP][:, : ref.PATCH_FRAMES] * _HANN
    spectrum = np.abs(np.fft.rfft(frames, n=ref.FFT_LENGTH, axis=2))
    return np.log(spectrum @ _MEL + ref.LOG_OFFSET).astype(np.float32)


class Backbone:
    """The backbone ONNX model with the tensors the heads read as extra outputs.

    Two kinds: YAMNet (its log-mel patches computed here, windows of 0.975 s) and a waveform
    transformer such as CED-Tiny (windows of the descriptor's length, 3 s: the second look's
    default look). `tensors` names, per role, the graph tensor that plays it:
    `scores` (probabilities), `logits`, `embedding`, and the `middle` and `last` layers that
    fusion pools; `layout` says how those two are laid out: "nctf" (YAMNet's convolutions:
    channels, time, frequency) or "ntc" (a transformer's tokens)."""

    def __init__(self, model_path: Path, threads: int = 0):
        import onnx

        model = onnx.load(str(model_path))
        meta = {p.key.removeprefix("audiotagger."): p.value for p in model.metadata_props}
        if int(meta.get("sample_rate", 0)) != RATE:
            raise SystemExit(f"{model_path}: the heads are trained on {RATE} Hz audio; this model takes "
                             f"{meta.get('sample_rate', 'no declared')} Hz")
        self.input = meta.get("input_name", "log_mel")
        self.window = int(meta.get("window_samples", WINDOW))
        self.waveform = meta.get("input_kind") == "waveform"
        # Windows are cut from mixtures every TRAIN_HOP for YAMNet; a waveform model's longer
        # windows at its own hop (CED-Tiny: 3 s every 0.5 s) see every event at several places.
        self.hop = int(meta.get("hop_samples", TRAIN_HOP)) if self.waveform else TRAIN_HOP
        self.tensors, self.layout = backbone_tensors(model)
        self.session = convert_yamnet.tapped_session(model, list(self.tensors.values()), threads=threads)

    def features(self, windows: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
        """Per window, each role's tensor as the backbone computes it."""
        out: dict[str, list[np.ndarray]] = {}
        roles = list(self.tensors)
        names = list(self.tensors.values())
        for i in range(0, len(windows), batch):
            x = windows[i: i + batch].astype(np.float32)
            feed = x if self.waveform else log_mel_patches(x)
            for role, value in zip(roles, self.session.run(names, {self.input: feed})):
                out.setdefault(role, []).append(value)
        return {k: np.concatenate(v) for k, v in out.items()}


def backbone_tensors(model) -> tuple[dict[str, str], str]:
    """Each role's tensor in `model`, and the layout of its layers (see `Backbone`)."""
    kinds = {p.value for p in model.metadata_props if p.key == "audiotagger.input_kind"}
    return waveform_tensors(model) if "waveform" in kinds else yamnet_tensors()


def yamnet_tensors() -> tuple[dict[str, str], str]:
    # Layer 12 (512 channels x 6 steps x 4 bands) and layer 14 (1024 x 3 x 2): [002]'s middle and
    # last layer, named as the converter names YAMNet's ReLU outputs.
    return ({"scores": "scores", "logits": "logits", "embedding": "embedding",
             "middle": "layer12_pointwise_conv", "last": "layer14_pointwise_conv"}, "nctf")


def waveform_tensors(model) -> tuple[dict[str, str], str]:
    """CED-Tiny's tensors, found by the structure of its export (a ViT encoder: blocks, a final
    norm, the mean over tokens, an output norm and linear layer, a sigmoid): the output of the
    middle encoder block, the final norm's tokens, the mean token and the logits."""
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    scores = model.graph.output[0].name
    sigmoid = producer[scores]
    gemm = producer[sigmoid.input[0]]
    norm_out = producer[gemm.input[0]]
    mean = producer[norm_out.input[0]]
    if (sigmoid.op_type, gemm.op_type, norm_out.op_type, mean.op_type) != (
            "Sigmoid", "Gemm", "LayerNormalization", "ReduceMean"):
        raise SystemExit("the waveform model is not CED-shaped (tokens -> mean -> norm -> linear -> sigmoid); "
                         "the heads know YAMNet and CED-Tiny")
    tokens = producer[mean.input[0]]
    last = tokens.input[0] if tokens.op_type == "Reshape" else mean.input[0]
    fc2 = sorted((n for n in nodes if n.op_type == "Add" and any(".mlp.fc2.bias" in i for i in n.input)),
                 key=lambda n: int(next(i for i in n.input if ".mlp.fc2.bias" in i).split(".blocks.")[1].split(".")[0]))
    if not fc2:
        raise SystemExit("the waveform model has no encoder blocks named *.blocks.N.mlp.fc2")
    # The residual sum after the middle block's MLP is that block's output.
    branch = fc2[len(fc2) // 2 - 1].output[0]
    middle = next(n.output[0] for n in nodes if n.op_type == "Add" and branch in n.input)
    return ({"scores": scores, "logits": gemm.output[0], "embedding": mean.output[0],
             "middle": middle, "last": last}, "ntc")
