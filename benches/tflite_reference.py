#!/usr/bin/env python3
"""The Python reference the scale bench compares against: Google's official TF-Lite YAMNet
through ai-edge-litert, one 15600-sample window per call at the given hop, over a raw
float32 16 kHz mono file. Prints one JSON line: windows, seconds, windows_per_s.

    python benches/tflite_reference.py AUDIO.f32 --hop 7680 --threads 1
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

WINDOW = 15600

ap = argparse.ArgumentParser()
ap.add_argument("audio", type=Path)
ap.add_argument("--hop", type=int, default=7680)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--model", type=Path, default=Path(__file__).resolve().parents[2] / "shared/models/yamnet.tflite")
args = ap.parse_args()

audio = np.fromfile(args.audio, "<f4")
it = Interpreter(str(args.model), num_threads=args.threads)
it.allocate_tensors()
inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
starts = range(0, audio.size - WINDOW + 1, args.hop)
t0 = time.perf_counter()
for s in starts:
    it.set_tensor(inp, audio[s:s + WINDOW])
    it.invoke()
    it.get_tensor(out)
seconds = time.perf_counter() - t0
json.dump({"windows": len(starts), "seconds": seconds, "windows_per_s": len(starts) / seconds}, sys.stdout)
print()
