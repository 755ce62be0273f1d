#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Makes `models/efficientat-mn04.onnx`: EfficientAT `mn04_as` (MIT) with the element's descriptor.

Two steps, because the first needs PyTorch (several GB with its CUDA wheels) and set-up does not
install it:

1. `export` (by hand, once): the checkpoint `mn04_as_mAP_432.pt` to an ONNX graph whose input
   is EfficientAT's normalised log-mel `[N, 1, 128, frames]` and whose outputs are the 527
   logits and the 384-d embedding (the mean of the last feature map). It wraps EfficientAT's
   `MN` as `Backbone` below: `features`, the mean over frequency and time, and the classifier,
   without `MN.forward`'s batch-dependent `squeeze()`. `../shared/models/efficientat/
   mn04_as_mel.onnx` was made this way (by `convert_efficientat.py` beside it, whose
   `Backbone` this is), and set-up starts from that file:

       python models/convert_efficientat.py export --weights mn04_as_mAP_432.pt \\
           --efficientat path/to/fschmid56/EfficientAT -o mn04_as_mel.onnx

2. `describe` (set-up): writes the `audiotagger.*` descriptor into the graph's metadata: 32 kHz,
   EfficientAT's front-end as descriptor values (pre-emphasis 0.97, centred reflect-padded
   frames, symmetric Hann 800 in a 1024 FFT, hop 320, power, 128 Kaldi mel bands 0-15 kHz,
   `(ln(mel + 1e-5) + 4.5) / 5`, layout `[1, bands, frames]`), logits (a sigmoid makes them
   probabilities), the embedding, and the 527 AudioSet labels and ids; windows of 2 s every
   0.5 s. The network ends in global pooling, so it takes any number of frames: `--window`
   sets another window length (a sidecar `<model>.json` can too).

       python models/convert_efficientat.py describe ../shared/models/efficientat/mn04_as_mel.onnx \\
           --labels ../shared/models/efficientat/class_labels_indices.csv -o models/efficientat-mn04.onnx
"""

import argparse
import json
import sys
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_ced import labels_of, save_described  # noqa: E402

SAMPLE_RATE = 32000
FRAME_HOP = 320
# Chosen from the window comparison in docs/backbones.md: 2 s windows hear better than 1 s
# (clip hit@3 0.79 against 0.65, event F1 higher) at YAMNet's cost; 3 s costs 1.7 times more.
DEFAULT_WINDOW_SECONDS = 2.0
HOP_SECONDS = 0.5

FRONT_END = {
    "input_kind": "log_mel",
    "mel.preemphasis": "0.97",
    "mel.center": "reflect",
    "mel.window": "hann_symmetric",
    "mel.frame_length": "800",
    "mel.frame_hop": str(FRAME_HOP),
    "mel.fft_length": "1024",
    "mel.spectrum": "power",
    "mel.scale": "kaldi",
    "mel.bands": "128",
    "mel.fmin": "0",
    "mel.fmax": "15000",
    "mel.log": "ln",
    "mel.log_offset": "1e-5",
    "mel.normalize_mean": "-4.5",
    "mel.normalize_std": "5",
    "mel.layout": "1,bands,frames",
}


def describe(src, labels_csv, out, window_seconds):
    model = onnx.load(src)
    graph = model.graph
    inputs = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    outputs = [o.name for o in graph.output]
    if list(inputs) != ["mel"] or inputs["mel"][1:3] != [1, 128] or outputs != ["logits", "embedding"]:
        raise SystemExit(f"{src}: expected input mel [N, 1, 128, frames] and outputs logits, embedding; "
                         f"found inputs {inputs}, outputs {outputs}")
    names, ids = labels_of(labels_csv)
    assert len(names) == 527
    window = int(round(window_seconds * SAMPLE_RATE / FRAME_HOP)) * FRAME_HOP
    meta = {
        "descriptor_version": "1",
        "model_name": "efficientat-mn04",
        "sample_rate": str(SAMPLE_RATE),
        "window_samples": str(window),
        "hop_samples": str(int(round(HOP_SECONDS * SAMPLE_RATE / FRAME_HOP)) * FRAME_HOP),
        **FRONT_END,
        "input_name": "mel",
        "output.scores": "logits",
        "output.embedding": "embedding",
        "scores_are_probabilities": "false",
        "labels": json.dumps(names),
        "label_ids": json.dumps(ids),
    }
    save_described(model, meta, "audiotagger models/convert_efficientat.py", out)


def export(weights, efficientat, out, opset):
    """Step 1; needs torch and a checkout of fschmid56/EfficientAT (not installed by set-up)."""
    import contextlib
    import io
    import os

    import torch
    from torch import nn

    class Backbone(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, mel):  # [N, 1, 128, frames]
            x = self.net.features(mel)
            return self.net.classifier(x).flatten(1), torch.mean(x, dim=(2, 3))

    sys.path.insert(0, os.path.abspath(efficientat))
    cwd = os.getcwd()
    os.chdir(efficientat)  # EfficientAT's helpers read metadata/ relative to the working directory
    from helpers.utils import NAME_TO_WIDTH
    from models.mn.model import get_model

    with contextlib.redirect_stdout(io.StringIO()):
        net = get_model(width_mult=NAME_TO_WIDTH("mn04_as"), pretrained_name=None, head_type="mlp")
    os.chdir(cwd)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    net.eval()
    torch.onnx.export(Backbone(net).eval(), (torch.randn(1, 1, 128, 200),), out, input_names=["mel"],
                      output_names=["logits", "embedding"], opset_version=opset, do_constant_folding=True,
                      dynamic_axes={"mel": {0: "batch", 3: "frames"}, "logits": {0: "batch"},
                                    "embedding": {0: "batch"}})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    d = sub.add_parser("describe")
    d.add_argument("model")
    d.add_argument("--labels", required=True)
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--window", type=float, default=DEFAULT_WINDOW_SECONDS, help="seconds per window")
    e = sub.add_parser("export")
    e.add_argument("--weights", required=True)
    e.add_argument("--efficientat", required=True)
    e.add_argument("-o", "--output", required=True)
    e.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    if args.step == "describe":
        describe(args.model, args.labels, args.output, args.window)
    else:
        export(args.weights, args.efficientat, args.output, args.opset)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
