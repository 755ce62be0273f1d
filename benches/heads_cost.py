#!/usr/bin/env python3
"""What the trained heads cost: the model with heads against the plain model, as ratios measured
in the same run.

    .venv/bin/python benches/heads_cost.py          # after scripts/setup.sh

1. Bare ONNX Runtime, one thread, batches of 16 log-mel patches of real speech and music:
   the plain model; backbone + head composed into one graph (what set-up ships); and the
   backbone with its tapped tensors as outputs followed by the head as a second session (the
   alternative: a head exported on its own).
2. The element end to end on 16 minutes of real speech and music (`gst-launch-1.0 ... !
   audiotagger mode=queued watch=gunshot,glass,scream,siren ! fakesink`), plain model against
   the model with heads, runs alternated, median of each.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import utils

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "models"))
import convert_yamnet  # noqa: E402
import heads_data as hd  # noqa: E402
import yamnet_reference as ref  # noqa: E402

PLAIN = REPO / "models" / "yamnet.onnx"
HEADS = REPO / "models" / "yamnet-heads.onnx"
LONG = REPO.parent / "shared" / "audio" / "long"
ROUNDS = 5


def session(model, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def best_rate(run, batches) -> float:
    rates = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for b in batches:
            run(b)
        rates.append(sum(len(b) for b in batches) / (time.perf_counter() - t))
    return statistics.median(rates)


def bare() -> None:
    audio = np.concatenate([hd.load_audio(p) for p in sorted(LONG.glob("*__asterisk*__1.wav"))])
    mel = ref.patches(ref.log_mel(audio)).astype(np.float32)[:1024]
    batches = [mel[i: i + 16] for i in range(0, len(mel), 16)]
    plain, heads = session(PLAIN), session(HEADS)
    composed = onnx.shape_inference.infer_shapes(onnx.load(str(HEADS)))
    tensors, _ = hd.backbone_tensors(onnx.load(str(PLAIN)))
    head_inputs = [tensors[role] for role in ("embedding", "logits", "middle", "last")]
    used = {i for n in composed.graph.node if n.name.startswith("head/") for i in n.input}
    head_inputs = [t for t in head_inputs if t in used]
    head_only = session(utils.Extractor(composed).extract_model(head_inputs, ["head_probs"]))
    tapped_s = convert_yamnet.tapped_session(onnx.load(str(PLAIN)), head_inputs, threads=1)
    out_names = ["scores", *[t for t in head_inputs if t != "scores"]]

    def two_sessions(b):
        outs = dict(zip(out_names, tapped_s.run(out_names, {"log_mel": b})))
        head_only.run(None, {t: outs[t] for t in head_inputs})

    rates = {}
    for _ in range(2):  # alternate, so a slow spell hits every variant
        for name, run in (("plain", lambda b: plain.run(["scores"], {"log_mel": b})),
                          ("composed", lambda b: heads.run(["scores"], {"log_mel": b})),
                          ("two sessions", two_sessions)):
            rates.setdefault(name, []).append(best_rate(run, batches))
    base = statistics.median(rates["plain"])
    print(f"bare ONNX Runtime, 1 thread, batch 16, {sum(map(len, batches))} windows, median of {ROUNDS} x 2:")
    for name, r in rates.items():
        m = statistics.median(r)
        print(f"  {name:<13} {m:7.0f} windows/s  time x{base / m:.3f} of the plain model's")


def element() -> None:
    env = dict(os.environ, GST_PLUGIN_PATH=str(REPO / "target" / "release"))
    wav = sorted(LONG.glob("music__*.wav"))[0]
    times: dict[str, list[float]] = {}
    for _ in range(3):
        for name, model in (("plain", PLAIN), ("heads", HEADS)):
            cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={wav}", "!", "decodebin", "!", "audioconvert", "!",
                   "audiotagger", f"model={model}", "mode=queued", "watch=gunshot,glass,scream,siren", "!",
                   "fakesink", "sync=false"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            times.setdefault(name, []).append(time.perf_counter() - t)
    p, h = statistics.median(times["plain"]), statistics.median(times["heads"])
    print(f"element, {wav.name}, mode=queued, median of 3 alternated runs: plain {p:.2f} s, "
          f"with heads {h:.2f} s: time x{h / p:.3f}")


if __name__ == "__main__":
    bare()
    element()
