#!/usr/bin/env python3
"""Reference fixtures for the Rust tests, computed by the independent Python references.

    python models/make_fixtures.py [--model models/yamnet.onnx] [-o tests/fixtures/generated]

For each signal (real recordings from ../shared/audio resampled to 16 kHz mono, plus synthetic
noise, tones and silence) it writes, as raw little-endian float32:
  NAME.wav.f32      the 16 kHz mono waveform
  NAME.logmel.f32   [frames, 64] YAMNet's published float log-mel (numpy, float64, rounded once)
  NAME.scores.f32   [windows, 521] yamnet.onnx on those log-mel patches (hop 48 frames)
and index.json describing them, with the official TF-Lite model's top-1 class per window and the
TF-Lite mel matrix's int8 codes and scale.

For the descriptor-driven front-ends (EfficientAT's, librosa/PANNs-style) it writes frontends.json:
per case, the `audiotagger.*` descriptor keys, a real clip at the model rate (NAME.wav.f32) and the
reference features of that clip alone (NAME.features.f32, [frames, bands], models/frontend_reference.py).
Nothing here is computed by the Rust code under test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert_yamnet  # noqa: E402
import frontend_reference  # noqa: E402
import yamnet_reference as ref  # noqa: E402

EFFICIENTAT_KEYS = {
    "mel.preemphasis": "0.97", "mel.center": "reflect", "mel.window": "hann_symmetric",
    "mel.frame_length": "800", "mel.frame_hop": "320", "mel.fft_length": "1024", "mel.spectrum": "power",
    "mel.scale": "kaldi", "mel.bands": "128", "mel.fmin": "0", "mel.fmax": "15000", "mel.log": "ln",
    "mel.log_offset": "1e-5", "mel.normalize_mean": "-4.5", "mel.normalize_std": "5",
    "mel.layout": "frames,bands",
}
PANNS_KEYS = {
    "mel.center": "reflect", "mel.window": "hann_periodic", "mel.frame_length": "1024",
    "mel.frame_hop": "320", "mel.fft_length": "1024", "mel.spectrum": "power", "mel.scale": "slaney",
    "mel.norm": "slaney", "mel.bands": "64", "mel.fmin": "50", "mel.fmax": "14000", "mel.log": "db",
    "mel.log_floor": "1e-10",
}
LIBROSA_KEYS = {
    "mel.center": "zeros", "mel.window": "hamming_periodic", "mel.frame_length": "400",
    "mel.frame_hop": "160", "mel.fft_length": "512", "mel.spectrum": "magnitude", "mel.scale": "slaney",
    "mel.bands": "40", "mel.fmin": "20", "mel.fmax": "8000", "mel.log": "log10", "mel.log_offset": "1e-6",
    "mel.top_db": "6",
}
CED_KEYS = {
    "mel.center": "reflect", "mel.window": "hann_periodic", "mel.frame_length": "512",
    "mel.frame_hop": "160", "mel.fft_length": "512", "mel.spectrum": "power", "mel.scale": "htk_hz",
    "mel.bands": "64", "mel.fmin": "0", "mel.fmax": "8000", "mel.log": "db", "mel.log_floor": "1e-10",
    "mel.top_db": "120", "mel.layout": "frames,bands",
}


def panns_reference(x):
    """PANNs' CNN14 front-end at 32 kHz (librosa: periodic Hann 1024, Slaney mel with norm, dB)."""
    return frontend_reference.librosa_logmel(x, 32000, 1024, 1024, 320, "hann_periodic", "reflect", 64, 50,
                                             14000, "slaney", "power", "db", 0.0, 1e-10, None)


# (case, rate, keys, reference, clip, seconds from, seconds long)
FRONTEND_CASES = [
    ("efficientat_gunshot", 32000, EFFICIENTAT_KEYS, lambda x: frontend_reference.efficientat(x),
     "gunshot__freesound__1", 0.0, 1.0),
    ("efficientat_speech", 32000, EFFICIENTAT_KEYS, lambda x: frontend_reference.efficientat(x),
     "speech__librispeech__1", 0.5, 2.51),
    ("efficientat_glass", 32000, EFFICIENTAT_KEYS, lambda x: frontend_reference.efficientat(x),
     "glass_breaking__infineon__2", 0.0, 0.3),
    ("panns_music", 32000, PANNS_KEYS, panns_reference, "music__freesound__1", 1.0, 3.0),
    ("panns_silence", 32000, PANNS_KEYS, panns_reference, "silence__asterisk__1", 0.0, 1.0),
    ("ced_gunshot", 16000, CED_KEYS, lambda x: frontend_reference.torchaudio_db(x),
     "gunshot__freesound__1", 0.0, 3.0),
    ("librosa_dog", 16000, LIBROSA_KEYS, lambda x: frontend_reference.librosa_logmel(
        x, 16000, 512, 400, 160, "hamming_periodic", "zeros", 40, 20, 8000, None, "magnitude", "log10",
        1e-6, 0.0, 6.0), "dog__bigsoundbank__1", 0.0, 2.0),
]


def write_frontend_cases(output: Path) -> None:
    import soxr

    cases = []
    for name, rate, keys, reference, stem, start, seconds in FRONTEND_CASES:
        wav, source_rate = ref.load_wav(ref.SHARED / "audio" / f"{stem}.wav")
        mono = wav.mean(axis=1)
        if source_rate != rate:
            mono = soxr.resample(mono, source_rate, rate, quality="VHQ")
        x = np.ascontiguousarray(mono[int(start * rate):int((start + seconds) * rate)], np.float32)
        features = reference(x.astype(np.float64))
        x.astype("<f4").tofile(output / f"{name}.wav.f32")
        features.astype("<f4").tofile(output / f"{name}.features.f32")
        cases.append(dict(name=name, clip=stem, samples=int(x.size), frames=int(features.shape[0]),
                          bands=int(features.shape[1]),
                          keys={"sample_rate": str(rate), **keys}))
    (output / "frontends.json").write_text(json.dumps(dict(cases=cases), indent=1))

# Real clips chosen to span rates (8, 11.025, 16, 22.05, 44.1, 48 kHz), channel counts and kinds.
CLIPS = [
    "speech__librispeech__1", "speech__dcase2016__1", "music__freesound__1", "music__librosa__1",
    "dog__bigsoundbank__1", "siren__sirendetection__1", "glass_breaking__infineon__2",
    "gunshot__freesound__1", "gunshot_distant__elp__1", "crying_baby__donateacry__1",
    "rain__freesound__1", "bird__librosa__1", "laughter__dcase2016__1", "car_horn__asutest__1",
    "door_knock__dcase2016__2", "silence__asterisk__1", "thunder__freesound__1", "cough__dcase2016__1",
    "phone_ring__dcase2016__1", "engine__freesound__1", "cat__bigsoundbank__1", "applause__freesound__1",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ref.REPO / "models" / "yamnet.onnx")
    ap.add_argument("-o", "--output", type=Path, default=ref.REPO / "tests" / "fixtures" / "generated")
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    signals = {}
    for stem in CLIPS:
        wav, rate = ref.load_wav(ref.SHARED / "audio" / f"{stem}.wav")
        signals[stem] = dict(source_rate=rate, source_channels=int(wav.shape[1]), x=ref.to_16k_mono(wav, rate))
    for name, x in ref.synthetic_signals().items():
        signals[name] = dict(source_rate=ref.SAMPLE_RATE, source_channels=1, x=x)

    sess = ref.onnx_session(args.model)
    tfl = ref.TfliteYamnet()
    entries = []
    for name, sig in signals.items():
        x = sig["x"]
        logmel = ref.log_mel(x)
        patches = ref.patches(logmel).astype(np.float32)
        scores = sess.run(None, {"log_mel": patches})[0] if len(patches) else np.zeros((0, 521), np.float32)
        tflite_top1 = [int(tfl.run(w)["scores"].argmax()) for w in ref.windows(x)]
        x.astype("<f4").tofile(args.output / f"{name}.wav.f32")
        logmel.astype("<f4").tofile(args.output / f"{name}.logmel.f32")
        scores.astype("<f4").tofile(args.output / f"{name}.scores.f32")
        entries.append(dict(name=name, real=name in CLIPS, source_rate=sig["source_rate"],
                            source_channels=sig["source_channels"], samples=int(x.size),
                            frames=int(logmel.shape[0]), windows=int(len(patches)), tflite_top1=tflite_top1))

    graph = convert_yamnet.TfliteGraph((ref.SHARED / "models" / "yamnet.tflite").read_bytes())
    mel_op = next(op for kind, op in graph.ops() if kind == "FULLY_CONNECTED")
    codes, scale = graph.int8_codes(int(mel_op.InputsAsNumpy()[1]))
    index = dict(
        sample_rate=ref.SAMPLE_RATE, window_samples=ref.WINDOW_SAMPLES, hop_samples=ref.HOP_SAMPLES,
        bands=ref.BANDS, classes=521, tflite_mel_scale=float(scale[0]),
        tflite_mel_codes=codes.astype(int).tolist(), signals=entries,
    )
    (args.output / "index.json").write_text(json.dumps(index))
    write_frontend_cases(args.output)
    print(f"wrote {len(entries)} fixtures to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
