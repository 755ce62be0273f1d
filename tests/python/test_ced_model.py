"""The second-look model: models/convert_ced.py's CED-Tiny computes the front-end CED was trained
with (torchaudio's, written out here in numpy float64, sharing no code with the converter), takes
any look length, and still scores like the file it came from."""
from __future__ import annotations

import json
import wave

import numpy as np
import onnx
import onnxruntime as ort
import soxr

from conftest import REPO

CED = REPO.parent / "shared" / "models" / "ced"
AUDIO = REPO.parent / "shared" / "audio"


def reference_db(x: np.ndarray) -> np.ndarray:
    """torchaudio MelSpectrogram(16 kHz, n_fft 512, hop 160, periodic Hann, centred with reflect
    padding, power 2, 64 HTK bands 0-8 kHz, no norm) then AmplitudeToDB(top_db=120) on one clip:
    [64 bands, frames]."""
    x = x.astype(np.float64)
    padded = np.pad(x, (256, 256), mode="reflect")
    frames = (len(padded) - 512) // 160 + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    spec = np.abs(np.fft.rfft(np.stack([padded[i * 160:i * 160 + 512] * window for i in range(frames)]), axis=1)) ** 2
    freqs = np.linspace(0, 8000, 257)
    mel = lambda hz: 2595 * np.log10(1 + hz / 700)
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    edges = hz(np.linspace(mel(0.0), mel(8000.0), 66))
    slopes = edges[None, :] - freqs[:, None]
    widths = np.diff(edges)
    bank = np.maximum(0, np.minimum(-slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]))
    db = 10 * np.log10(np.maximum(spec @ bank, 1e-10))
    return np.maximum(db, db.max() - 120).T


def with_db_output(path):
    model = onnx.load(str(path))
    floored = next(n.output[0] for n in model.graph.node if n.output[0].endswith("_floored"))
    model.graph.output.append(onnx.helper.make_tensor_value_info(floored, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString()), floored


def clip(name: str) -> np.ndarray:
    with wave.open(str(AUDIO / name)) as w:
        raw, width, ch, rate = w.readframes(w.getnframes()), w.getsampwidth(), w.getnchannels(), w.getframerate()
    dtype = {2: np.int16, 4: np.int32}[width]
    x = np.frombuffer(raw, dtype=dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)
    return soxr.resample(x.reshape(-1, ch).mean(axis=1), rate, 16000).astype(np.float32)


def test_the_front_end_is_torchaudios_to_a_ten_thousandth_of_a_db(ced_onnx):
    session, db_name = with_db_output(ced_onnx)
    rng = np.random.default_rng(3)
    t = np.arange(3 * 16000) / 16000
    tone_in_noise = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    # A real recording, and one with a stretch of digital silence, where the floor matters.
    gunshot = clip("gunshot__freesound__1.wav")[:80000]
    silent = gunshot.copy()
    silent[20000:40000] = 0
    for x in [tone_in_noise, gunshot, silent]:
        got = session.run([db_name], {"waveform": x[None]})[0][0]
        want = reference_db(x)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-3, np.abs(got - want).max()


def test_it_scores_like_the_shipped_file_and_takes_any_look_length(ced_onnx):
    ours = ort.InferenceSession(str(ced_onnx))
    shipped = ort.InferenceSession(str(CED / "ced_tiny.onnx"))
    x = clip("gunshot__freesound__1.wav")
    labels = json.loads(next(p.value for p in onnx.load(str(ced_onnx)).metadata_props if p.key == "audiotagger.labels"))
    for seconds in [2, 3, 5]:
        look = x[: seconds * 16000]
        look = np.pad(look, (0, seconds * 16000 - look.size))
        a = ours.run(None, {"waveform": look[None]})[0][0]
        b = shipped.run(None, {"waveform": look[None]})[0][0]
        assert labels[int(a.argmax())] == "Gunshot, gunfire", (seconds, labels[int(a.argmax())])
        # The int8 window and mel bank of the shipped file move its scores by up to ~0.15.
        assert np.abs(a - b).max() < 0.2
    meta = {p.key: p.value for p in onnx.load(str(ced_onnx)).metadata_props}
    assert meta["audiotagger.input_kind"] == "waveform"
    assert len(labels) == 527
    onnx.checker.check_model(onnx.load(str(ced_onnx)))
