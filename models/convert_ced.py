#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Makes `models/ced-tiny.onnx`, the second-look model, from CED-Tiny as the crates.io crate
`soundevents` 0.2.1 ships it (`../shared/models/ced/ced_tiny.onnx`, Apache-2.0).

That file takes a 16 kHz waveform `[N, samples]` and has its front-end inside the graph, but
(see the README beside it) stores every weight as int8 behind `DequantizeLinear`, the STFT
window and the mel bank included, lacks the -120 dB floor of its `AmplitudeToDB(top_db=120)`,
and lists its nodes out of order. This converter:

- folds every constant `DequantizeLinear` into a float32 initializer (ONNX Runtime otherwise
  picks a lossy int8 kernel for the matrices, and float32 runs faster on the CPU);
- replaces the dequantized window and mel bank with their exact values, computed here as
  torchaudio computes them (`torch.hann_window(512)` is periodic; `melscale_fbanks` with HTK
  scale, no norm, 0-8000 Hz, 257 bins, 64 bands);
- adds the floor: each clip's dB values are kept within 120 dB of that clip's maximum
  (torchaudio takes the maximum over the whole batch when given `[batch, mel, time]`; per clip
  is what a clip scored alone gets, and keeps a clip's scores independent of its batch);
- sorts the nodes topologically, so `onnx.checker` accepts the graph;
- writes the element's model descriptor (`audiotagger.*` metadata: a waveform model at 16 kHz,
  527 AudioSet labels and ids) with windows of 3 s every 0.5 s when it is the element's first
  model (`model=`, chosen in docs/backbones.md); as the second look, the element sets the look
  length it is asked for, as the graph takes any length from 2 400 to 161 600.

Usage: convert_ced.py ../shared/models/ced/ced_tiny.onnx --labels
       ../shared/models/ced/class_labels_indices.csv -o models/ced-tiny.onnx [--check DIR]
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

SAMPLE_RATE = 16000
N_FFT = 512
N_MELS = 64
LOOK_SAMPLES = 5 * SAMPLE_RATE
WINDOW_SAMPLES = 3 * SAMPLE_RATE
HOP_SAMPLES = SAMPLE_RATE // 2
TOP_DB = 120.0


def hann_periodic(n):
    k = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)


def htk_mel_bank(n_freqs, f_min, f_max, n_mels, sample_rate):
    """torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk"), in float64."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel_to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    m_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def constants(graph):
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def fold_dequantize(graph):
    """Every DequantizeLinear of constants becomes a float32 initializer of the same name."""
    consts = constants(graph)
    folded = {}
    keep = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            x = consts[node.input[0]].astype(np.float32)
            scale = consts[node.input[1]].astype(np.float32)
            zero = consts[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1 and x.ndim > 1:
                shape = [1] * x.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = np.reshape(zero, shape) if np.ndim(zero) else zero
            folded[node.output[0]] = ((x - zero) * scale).astype(np.float32)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return folded


def replace_front_end(folded):
    """The exact window and mel bank in place of their int8 approximations."""
    window = next(k for k, v in folded.items() if v.shape == (N_FFT,))
    bank = next(k for k, v in folded.items() if v.shape == (N_FFT // 2 + 1, N_MELS))
    exact_window = hann_periodic(N_FFT).astype(np.float32)
    exact_bank = htk_mel_bank(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE).astype(np.float32)
    # The int8 values must be approximations of these, or this is not the graph we think it is.
    assert np.abs(folded[window] - exact_window).max() < 0.01, "the STFT window is not Hann 512"
    assert np.abs(folded[bank] - exact_bank).max() < 0.01, "the mel bank is not HTK 64 x 0-8 kHz"
    folded[window] = exact_window
    folded[bank] = exact_bank


def add_floor(graph):
    """Max(dB, max over the clip - 120) right after the dB conversion (`Log`, `Div`, `Mul`)."""
    log = next(n for n in graph.node if n.op_type == "Log")
    div = next(n for n in graph.node if n.op_type == "Div" and n.input[0] == log.output[0])
    mul = next(n for n in graph.node if n.op_type == "Mul" and div.output[0] in n.input)
    db = mul.output[0]
    floored = db + "_floored"
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name == db:
                n.input[i] = floored
    graph.initializer.extend([
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "floor_axes"),
        numpy_helper.from_array(np.array(TOP_DB, dtype=np.float32), "floor_top_db"),
    ])
    graph.node.extend([
        helper.make_node("ReduceMax", [db, "floor_axes"], ["floor_peak"], keepdims=1),
        helper.make_node("Sub", ["floor_peak", "floor_top_db"], ["floor_level"]),
        helper.make_node("Max", [db, "floor_level"], [floored]),
    ])


def topological(graph):
    produced = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in produced for i in n.input)]
        if not ready:
            raise SystemExit("the graph has a cycle or an input nothing produces")
        for n in ready:
            ordered.append(n)
            produced.update(n.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def labels_of(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["display_name"] for r in rows], [r["mid"] for r in rows]


def convert(src, labels_csv, out):
    model = onnx.load(src)
    graph = model.graph
    folded = fold_dequantize(graph)
    replace_front_end(folded)
    used = {i for n in graph.node for i in n.input}
    consts = constants(graph)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in folded.items() if k in used)
    add_floor(graph)
    topological(graph)
    names, ids = labels_of(labels_csv)
    assert len(names) == 527
    meta = {
        "descriptor_version": "1",
        "model_name": "ced-tiny",
        "sample_rate": str(SAMPLE_RATE),
        "input_kind": "waveform",
        "window_samples": str(WINDOW_SAMPLES),
        "hop_samples": str(HOP_SAMPLES),
        "input_name": graph.input[0].name,
        "output.scores": graph.output[0].name,
        "scores_are_probabilities": "true",
        "labels": json.dumps(names),
        "label_ids": json.dumps(ids),
    }
    save_described(model, meta, "audiotagger models/convert_ced.py", out)


def save_described(model, meta, producer, out):
    """Writes `meta` as the model's only metadata (`audiotagger.*` descriptor keys), checks and
    saves it."""
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key="audiotagger." + k, value=v))
    model.producer_name = producer
    onnx.checker.check_model(model)
    onnx.save(model, out)


def check(src, out, audio_dir):
    """Scores every WAV of `audio_dir` (first 5 s) with the original and the converted model."""
    import onnxruntime as ort
    import soxr
    import wave

    def load(path):
        with wave.open(str(path)) as w:
            raw = w.readframes(w.getnframes())
            width, ch, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        dtype = {2: np.int16, 4: np.int32}[width]
        x = np.frombuffer(raw, dtype=dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)
        x = x.reshape(-1, ch).mean(axis=1)
        return soxr.resample(x, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else x.astype(np.float32)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    a = ort.InferenceSession(str(src), opts)
    b = ort.InferenceSession(str(out), opts)
    diffs, same = [], 0
    files = sorted(Path(audio_dir).glob("*.wav"))
    for f in files:
        x = load(f)[:LOOK_SAMPLES]
        if len(x) < 2400:
            continue
        pa = a.run(None, {"waveform": x[None]})[0][0]
        pb = b.run(None, {"waveform": x[None]})[0][0]
        diffs.append(np.abs(pa - pb).max())
        same += int(pa.argmax() == pb.argmax())
    print(f"{len(diffs)} clips: top-1 agreement with the shipped file {same}/{len(diffs)}, "
          f"largest probability change {max(diffs):.3f}, median {np.median(diffs):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--labels", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--check", metavar="DIR", help="compare with the original on DIR's WAVs")
    args = ap.parse_args()
    convert(args.model, args.labels, args.output)
    print(f"wrote {args.output}")
    if args.check:
        check(args.model, args.output, args.check)


if __name__ == "__main__":
    sys.exit(main())
