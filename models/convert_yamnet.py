#!/usr/bin/env python3
"""Convert Google's official YAMNet TF-Lite file into the float ONNX model audiotagger runs.

    python models/convert_yamnet.py SOURCE [--labels CSV] [-o models/yamnet.onnx]

SOURCE is a path to yamnet.tflite or a URL (http, https or file) to download it from, e.g. the
official TF-Hub export (see models/README.md). The weights are read from the TF-Lite flatbuffer
with the `tflite` package; no TensorFlow is involved and no number is copied by hand.

What the file holds, and what we do with it:
- The graph starts with YAMNet's own front-end (framing, Hann window, RFFT, |X|, an int8 mel
  matrix, log). The ONNX model starts after it: its input is the log-mel patch [N, 96, 64], which
  the element computes in Rust from the published float definition.
- It is "dynamic-range" quantised: most weights are int8 with per-channel (convolutions) or
  per-tensor (classifier) scales and zero point 0. We dequantise them to float32 once here; the
  result is a plain float model. Conv 1 and depthwise 2-3 are stored as float already.
- Batch norm is folded into each convolution (weights + bias); the activation is plain ReLU.
- Padding is TF "SAME": where the total padding is odd the extra pixel goes at the end, which ONNX
  expresses with explicit asymmetric `pads`.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OFFICIAL_MD5 = "90dbcc328012778f354581794d5ef709"
OFFICIAL_URL = "https://tfhub.dev/google/lite-model/yamnet/classification/tflite/1?lite-format=tflite"
OPSET = 17
IR_VERSION = 8  # readable by every ONNX Runtime since 1.10

# YAMNet's published front-end (tensorflow/models research/audioset/yamnet/params.py); the
# converter checks the numbers it can see in the TF-Lite graph against these.
FRONTEND = {
    "sample_rate": 16000,
    "frame_length": 400,
    "frame_hop": 160,
    "fft_length": 512,
    "bands": 64,
    "fmin": 125.0,
    "fmax": 7500.0,
    "log_offset": 0.001,
    "patch_frames": 96,
    "patch_hop_frames": 48,
}


@dataclass
class ConvLayer:
    name: str  # e.g. "layer3/depthwise_conv"
    depthwise: bool
    weight: np.ndarray  # ONNX layout: [O, I/groups, KH, KW], float32
    bias: np.ndarray
    stride: tuple[int, int]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    stored_int8: bool


def read_source(source: str) -> bytes:
    if re.match(r"^(https?|file)://", source):
        with urllib.request.urlopen(source, timeout=120) as r:  # noqa: S310 (user-given URL)
            data = r.read()
    else:
        data = Path(source).read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    if md5 != OFFICIAL_MD5:
        print(f"warning: md5 {md5} differs from the official file's {OFFICIAL_MD5}", file=sys.stderr)
    return data


class TfliteGraph:
    def __init__(self, data: bytes):
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ValueError("expected a single-subgraph TF-Lite model")
        self.g = self.model.Subgraphs(0)
        self.opnames = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}

    def op_name(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        return self.opnames[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]

    def ops(self):
        for i in range(self.g.OperatorsLength()):
            op = self.g.Operators(i)
            yield self.op_name(op), op

    def tensor(self, idx: int):
        return self.g.Tensors(idx)

    def shape(self, idx: int) -> list[int]:
        return [int(d) for d in self.tensor(idx).ShapeAsNumpy()]

    def name(self, idx: int) -> str:
        return self.tensor(idx).Name().decode()

    def value(self, idx: int) -> tuple[np.ndarray, bool]:
        """The constant's value as float32 (dequantised if stored as int8) and whether it was."""
        t = self.tensor(idx)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if not isinstance(raw, np.ndarray) or raw.size == 0:
            raise ValueError(f"tensor {idx} ({self.name(idx)}) has no constant data")
        shape = self.shape(idx)
        if t.Type() == tflite.TensorType.FLOAT32:
            return np.frombuffer(raw.tobytes(), np.float32).reshape(shape).copy(), False
        if t.Type() == tflite.TensorType.INT32:
            return np.frombuffer(raw.tobytes(), np.int32).reshape(shape).copy(), False
        if t.Type() != tflite.TensorType.INT8:
            raise ValueError(f"tensor {idx}: unsupported type {t.Type()}")
        q = t.Quantization()
        scale = q.ScaleAsNumpy().astype(np.float64)
        zero = q.ZeroPointAsNumpy().astype(np.float64)
        codes = np.frombuffer(raw.tobytes(), np.int8).reshape(shape).astype(np.float64)
        if scale.size > 1:  # per channel along the quantised dimension
            bshape = [1] * len(shape)
            bshape[q.QuantizedDimension()] = scale.size
            scale, zero = scale.reshape(bshape), zero.reshape(bshape)
        return ((codes - zero) * scale).astype(np.float32), True

    def int8_codes(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.tensor(idx)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        return np.frombuffer(raw.tobytes(), np.int8).reshape(self.shape(idx)), t.Quantization().ScaleAsNumpy()

    def options(self, op, cls):
        o = cls()
        t = op.BuiltinOptions()
        o.Init(t.Bytes, t.Pos)
        return o


def same_pads(in_size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-in_size // s)
    total = max((out - 1) * s + k - in_size, 0)
    return total // 2, total - total // 2  # TF: the odd pixel goes at the end


def extract(graph: TfliteGraph):
    """Walks the graph and returns the conv stack, the classifier and the front-end constants."""
    layers: list[ConvLayer] = []
    classifier = None
    mel = None
    saw_mean = saw_logistic = False
    for kind, op in graph.ops():
        ins = [int(i) for i in op.InputsAsNumpy() if i >= 0]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            cls = tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions
            o = graph.options(op, cls)
            if o.Padding() != tflite.Padding.SAME:
                raise ValueError(f"{kind}: only SAME padding is supported")
            if o.FusedActivationFunction() != tflite.ActivationFunctionType.RELU:
                raise ValueError(f"{kind}: expected a fused plain ReLU")
            if depthwise and o.DepthMultiplier() != 1:
                raise ValueError("depthwise multiplier other than 1")
            w, w_int8 = graph.value(ins[1])
            b, _ = graph.value(ins[2])
            # TF-Lite: conv OHWI, depthwise 1HW(C). ONNX: OIHW, depthwise C1HW with group=C.
            weight = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
            in_shape, out_shape = graph.shape(ins[0]), graph.shape(outs[0])
            m = re.match(r"yamnet_frames/(layer\d+/(?:conv|depthwise_conv|pointwise_conv))", graph.name(ins[1]))
            if not m:
                raise ValueError(f"unexpected weight name {graph.name(ins[1])}")
            layers.append(ConvLayer(
                name=m.group(1), depthwise=depthwise, weight=np.ascontiguousarray(weight), bias=b,
                stride=(o.StrideH(), o.StrideW()), in_hw=(in_shape[1], in_shape[2]),
                out_hw=(out_shape[1], out_shape[2]), stored_int8=w_int8,
            ))
        elif kind == "FULLY_CONNECTED":
            w, w_int8 = graph.value(ins[1])
            b, _ = graph.value(ins[2])
            if graph.shape(ins[1]) == [FRONTEND["bands"], FRONTEND["fft_length"] // 2 + 1]:
                mel = (ins[1], b)
            else:
                classifier = (w, b, w_int8)
        elif kind == "MEAN":
            axes, _ = graph.value(ins[1])
            if sorted(axes.tolist()) != [1, 2]:
                raise ValueError("expected the global average pool over H and W")
            saw_mean = True
        elif kind == "LOGISTIC":
            saw_logistic = True
    if not (layers and classifier and mel and saw_mean and saw_logistic):
        raise ValueError("this does not look like the YAMNet classification TF-Lite model")
    return layers, classifier, mel


def check_frontend(graph: TfliteGraph, mel) -> None:
    """The TF-Lite front-end constants agree with the published parameters we write as metadata."""
    _, mel_bias = mel
    if not np.allclose(mel_bias, FRONTEND["log_offset"]):
        raise ValueError(f"log offset in the graph is {mel_bias[:3]}, expected {FRONTEND['log_offset']}")
    for kind, op in graph.ops():
        if kind == "MUL":
            win, _ = graph.value(int(op.InputsAsNumpy()[1]))
            n = FRONTEND["frame_length"]
            periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
            if win.shape != (n,) or np.abs(win - periodic_hann).max() > 1e-6:
                raise ValueError("the graph's window is not a periodic Hann of the expected length")
            return
    raise ValueError("no window multiplication found in the front-end")


def read_labels(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows.sort(key=lambda r: int(r["index"]))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise ValueError(f"{path}: class indices are not 0..N-1")
    return [r["display_name"] for r in rows], [r["mid"] for r in rows]


def descriptor(labels: list[str], mids: list[str]) -> dict[str, str]:
    f = FRONTEND
    window = (f["patch_frames"] - 1) * f["frame_hop"] + f["frame_length"]
    d = {
        "audiotagger.descriptor_version": "1",
        "audiotagger.model_name": "yamnet",
        "audiotagger.sample_rate": str(f["sample_rate"]),
        "audiotagger.window_samples": str(window),
        "audiotagger.hop_samples": str(f["patch_hop_frames"] * f["frame_hop"]),
        "audiotagger.input_kind": "log_mel",
        "audiotagger.input_name": "log_mel",
        "audiotagger.mel.frames": str(f["patch_frames"]),
        "audiotagger.mel.frame_length": str(f["frame_length"]),
        "audiotagger.mel.frame_hop": str(f["frame_hop"]),
        "audiotagger.mel.fft_length": str(f["fft_length"]),
        "audiotagger.mel.window": "hann_periodic",
        "audiotagger.mel.spectrum": "magnitude",
        "audiotagger.mel.bands": str(f["bands"]),
        "audiotagger.mel.fmin": repr(f["fmin"]),
        "audiotagger.mel.fmax": repr(f["fmax"]),
        "audiotagger.mel.scale": "htk",
        "audiotagger.mel.log_offset": repr(f["log_offset"]),
        "audiotagger.output.scores": "scores",
        "audiotagger.output.embedding": "embedding",
        "audiotagger.scores_are_probabilities": "true",
        "audiotagger.num_classes": str(len(labels)),
        "audiotagger.labels": json.dumps(labels, ensure_ascii=False),
        "audiotagger.label_ids": json.dumps(mids),
        "audiotagger.source": "Google YAMNet TF-Lite classification export (Apache-2.0), int8 weights dequantised to float32",
    }
    return d


def build_onnx(layers: list[ConvLayer], classifier, labels, mids) -> onnx.ModelProto:
    f = FRONTEND
    inits, nodes = [], []
    nodes.append(helper.make_node("Unsqueeze", ["log_mel", "axes_1"], ["x0"], name="to_nchw"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes_1"))
    x = "x0"
    for layer in layers:
        tag = layer.name.replace("/", "_")
        w_name, b_name = f"{tag}_w", f"{tag}_b"
        inits += [numpy_helper.from_array(layer.weight, w_name), numpy_helper.from_array(layer.bias, b_name)]
        kh, kw = layer.weight.shape[2:]
        top, bottom = same_pads(layer.in_hw[0], kh, layer.stride[0])
        left, right = same_pads(layer.in_hw[1], kw, layer.stride[1])
        attrs = dict(kernel_shape=[kh, kw], strides=list(layer.stride), pads=[top, left, bottom, right])
        if layer.depthwise:
            attrs["group"] = layer.weight.shape[0]
        nodes.append(helper.make_node("Conv", [x, w_name, b_name], [f"{tag}_conv"], name=f"{layer.name}/conv", **attrs))
        # The ReLU outputs are named after the TF-Lite layers so parity tests can tap them.
        nodes.append(helper.make_node("Relu", [f"{tag}_conv"], [tag], name=f"{layer.name}/relu"))
        x = tag
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="global_average_pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["embedding"], name="embedding", axis=1))
    w, b, _ = classifier
    inits += [numpy_helper.from_array(w, "dense_w"), numpy_helper.from_array(b, "dense_b")]
    nodes.append(helper.make_node("Gemm", ["embedding", "dense_w", "dense_b"], ["logits"], name="dense", transB=1))
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["scores"], name="sigmoid"))
    graph = helper.make_graph(
        nodes, "yamnet",
        [helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["N", f["patch_frames"], f["bands"]])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", len(labels)]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", layers[-1].weight.shape[0]])],
        inits,
    )
    model = helper.make_model(graph, producer_name="audiotagger convert_yamnet.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = "YAMNet (AudioSet, 521 classes) on a log-mel patch; see models/yamnet.md"
    for k, v in descriptor(labels, mids).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)
    return model


def convert(source: str, labels_csv: Path) -> tuple[onnx.ModelProto, dict]:
    graph = TfliteGraph(read_source(source))
    layers, classifier, mel = extract(graph)
    check_frontend(graph, mel)
    labels, mids = read_labels(labels_csv)
    if classifier[0].shape[0] != len(labels):
        raise ValueError(f"classifier has {classifier[0].shape[0]} classes, labels file {len(labels)}")
    model = build_onnx(layers, classifier, labels, mids)
    report = {
        "conv_layers": len(layers),
        "float_layers": [layer.name for layer in layers if not layer.stored_int8],
        "int8_layers": sum(layer.stored_int8 for layer in layers) + int(classifier[2]),
        "parameters": int(sum(layer.weight.size + layer.bias.size for layer in layers) + classifier[0].size + classifier[1].size),
    }
    return model, report


# Calibration audio for the int8 model: real recordings any Debian machine can install
# (scripts/setup.sh does), none of them in ../shared/audio, whose clips measure the result.
CALIBRATION_DIRS = (
    Path("/usr/share/asterisk/moh"),  # asterisk-moh-opsound-wav: music
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),  # asterisk-core-sounds-en-wav: speech
    Path("/usr/share/sounds/freedesktop/stereo"),  # sound-theme-freedesktop: alerts, bells, clicks
)


def decode_16k_mono(path: Path) -> np.ndarray:
    """Any file GStreamer decodes (the alerts are Ogg Vorbis), as 16 kHz mono float32."""
    import subprocess

    raw = subprocess.run(
        ["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin", "!", "audioconvert", "!",
         "audioresample", "!", "audio/x-raw,format=F32LE,channels=1,rate=16000", "!", "fdsink", "fd=1"],
        check=True, capture_output=True).stdout
    return np.frombuffer(raw, "<f4")


def calibration_patches(dirs: list[Path], limit: int) -> np.ndarray:
    """Up to `limit` log-mel patches spread evenly over every file of `dirs` (the float front-end)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import yamnet_reference as ref

    files = sorted(p for d in dirs for p in d.glob("*") if p.suffix in (".wav", ".oga", ".ogg", ".flac"))
    if not files:
        raise FileNotFoundError(f"no calibration audio in {', '.join(map(str, dirs))}: install "
                                "asterisk-moh-opsound-wav asterisk-core-sounds-en-wav sound-theme-freedesktop "
                                "or pass --calibration DIR")
    per_file = []
    for path in files:
        wave_16k = decode_16k_mono(path)
        if wave_16k.size < ref.WINDOW_SAMPLES:  # short alerts: one padded window, as the element does
            wave_16k = np.pad(wave_16k, (0, ref.WINDOW_SAMPLES - wave_16k.size))
        per_file.append(ref.patches(ref.log_mel(wave_16k)).astype(np.float32))
    # Round-robin over files so that long music files do not crowd out the short alerts.
    picked, i = [], 0
    while len(picked) < limit and any(i < len(p) for p in per_file):
        picked += [p[i] for p in per_file if i < len(p)]
        i += 1
    return np.stack(picked[:limit])


def quantize_int8(float_model: Path, output: Path, patches: np.ndarray) -> dict:
    """Static QDQ int8 with ONNX Runtime's tools: per-channel int8 weights, uint8 activations
    calibrated on `patches`. The classifier and sigmoid stay float (scores need their range).

    Measured on the 80 clips of ../shared/audio (tests/python/test_int8_model.py): 7-bit weights
    (`reduce_range`) because AVX2 without VNNI saturates full-range u8×s8 products (top-1 0.70
    without); percentile (99.999) ranges beat min-max (top-1 0.86 against 0.83); uint8 weights
    gave 0.87 but leave the fast u8×s8 kernels; keeping single layers float gained at most 0.02.
    The weights are then rounded by GPTQ (`gptq_round`) and the biases corrected for the
    quantisation's mean shifts (`correct_biases`)."""
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"log_mel": patches[i:i + 32]} for i in range(0, len(patches), 32)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(output), Reader(),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=True, reduce_range=True, calibrate_method=CalibrationMethod.Percentile,
            nodes_to_exclude=["dense", "sigmoid"],
        )
    # The descriptor travels with the model; ORT's tools keep metadata_props, this makes sure.
    model = onnx.load(str(output))
    want = {p.key: p.value for p in onnx.load(str(float_model)).metadata_props}
    have = {p.key for p in model.metadata_props}
    for k, v in want.items():
        if k not in have:
            model.metadata_props.add(key=k, value=v)
    # Every calibration patch for the Hessians: 800 gave top-1 0.908, 200 gave 0.893.
    rounded = gptq_round(model, float_model, patches)
    corrected = correct_biases(model, float_model, patches[::max(1, len(patches) // BIAS_CORRECTION_PATCHES)])
    model.doc_string = "YAMNet int8 (static QDQ, calibrated on real recordings); see models/yamnet.md"
    onnx.save(model, str(output))
    return {"calibration_patches": int(len(patches)), "gptq_rounded_convs": rounded,
            "bias_corrected_convs": corrected,
            "bytes": output.stat().st_size}


def tapped_session(model: onnx.ModelProto, names: list[str], optimise: bool = True, threads: int = 0):
    """An ONNX Runtime CPU session of `model` that also returns the intermediate tensors `names`.
    Without `optimise`, Q/DQ pairs run as written (float maths on rounded values) instead of being
    fused into int8 kernels, so a convolution's output can be read before its requantisation.
    `threads`: intra-op threads (0: ONNX Runtime's default)."""
    import onnxruntime as ort

    tapped = onnx.ModelProto()
    tapped.CopyFrom(model)
    have = {o.name for o in tapped.graph.output}
    tapped.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                               for n in names if n not in have)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not optimise:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(tapped.SerializeToString(), options, providers=["CPUExecutionProvider"])


def gptq_codes(w: np.ndarray, h: np.ndarray, scale: np.ndarray, limit: int) -> np.ndarray:
    """GPTQ's rounding of w [rows, d] to codes in [-limit, limit] times `scale` [rows], column by
    column, for the input Hessian h [d, d] (shared by the rows) or [rows, d, d] (one per row)."""
    w = w.copy()
    d = w.shape[-1]
    diag = np.diagonal(h, axis1=-2, axis2=-1)
    # Inputs that are always zero (dead channels) constrain nothing; 1% damping as in GPTQ.
    h = h + np.eye(d) * (diag == 0)[..., None, :]
    damp = 0.01 * np.mean(np.diagonal(h, axis1=-2, axis2=-1), axis=-1, keepdims=True)
    h = h + damp[..., None] * np.eye(d)
    # Upper Cholesky factor of H⁻¹: row j holds how rounding column j moves the later ones.
    u = np.linalg.cholesky(np.linalg.inv(h)).swapaxes(-1, -2)
    codes = np.zeros(w.shape, np.int64)
    for j in range(d):
        codes[:, j] = np.clip(np.round(w[:, j] / scale), -limit, limit)
        err = (w[:, j] - codes[:, j] * scale) / u[..., j, j]
        w[:, j + 1:] -= err[:, None] * u[..., j, j + 1:]
    return codes


def gptq_round(qdq: onnx.ModelProto, float_model: Path, patches: np.ndarray) -> int:
    """GPTQ (Frantar et al. 2022, after Optimal Brain Quantization): rounds each convolution's
    weights to their int8 codes one input column at a time, moving the rounding error of each
    column onto the columns not yet rounded, weighted by the layer's input Hessian X·Xᵀ measured on
    `patches` in the float model. The scales stay as quantize_static chose them; only the codes
    change. Depthwise convolutions get one 9×9 Hessian per channel. Returns the layers rounded.

    Measured on ../shared/audio's 512 windows (not calibration data), with bias correction after
    it: top-1 agreement with the float model 0.875 -> 0.908, top-5 overlap 0.871 -> 0.883.
    Rounding the columns with the most input energy first ("act order") gave 0.896."""
    reference = onnx.load(str(float_model))
    inits = {i.name: i for i in qdq.graph.initializer}
    convs = [n for n in reference.graph.node if n.op_type == "Conv" and n.input[1] + "_quantized" in inits]
    attributes = {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute} for n in convs}
    names = sorted({n.input[0] for n in convs})
    session = tapped_session(reference, names)
    hessians: dict = {}

    def windows(x: np.ndarray, attrs: dict) -> np.ndarray:
        """[taps, batch, channels, out_h, out_w]: the input under each kernel tap."""
        kh, kw = attrs.get("kernel_shape", [1, 1])
        sh, sw = attrs.get("strides", [1, 1])
        t, l, b, r = attrs.get("pads", [0, 0, 0, 0])
        x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
        oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
        return np.stack([x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)])

    for i in range(0, len(patches), 25):
        outs = dict(zip(names, session.run(names, {"log_mel": patches[i:i + 25]})))
        for node in convs:
            attrs = attributes[node.name]
            taps = windows(outs[node.input[0]].astype(np.float64), attrs)
            if attrs.get("group", 1) > 1:  # depthwise: [channels, taps, taps]
                h = np.einsum("abcij,dbcij->cad", taps, taps)
            else:  # [channels·taps, channels·taps], in the weight's (c, kh, kw) order
                cols = taps.transpose(2, 0, 1, 3, 4).reshape(taps.shape[2] * taps.shape[0], -1)
                h = cols @ cols.T
            hessians[node.name] = hessians.get(node.name, 0) + h

    for node in convs:
        q = inits[node.input[1] + "_quantized"]
        codes = numpy_helper.to_array(q)
        scale = numpy_helper.to_array(inits[node.input[1] + "_scale"]).astype(np.float64)
        weight = numpy_helper.to_array(next(i for i in reference.graph.initializer if i.name == node.input[1]))
        rows = weight.reshape(weight.shape[0], -1).astype(np.float64)
        # Symmetric scales put each channel's largest weight at the end of the code range (±64
        # for 7-bit weights), so the codes quantize_static wrote span the range to keep.
        limit = int(np.abs(codes).max())
        new = gptq_codes(rows, hessians[node.name], scale, limit).reshape(codes.shape)
        q.CopyFrom(numpy_helper.from_array(new.astype(codes.dtype), q.name))
    return len(convs)


# Patches for the bias correction, spread over the calibration set: 200 took 26 s and gave the
# same agreement as 800 (top-1 0.875 and 0.877 on ../shared/audio, measured before GPTQ rounding).
BIAS_CORRECTION_PATCHES = 200


def correct_biases(qdq: onnx.ModelProto, float_model: Path, patches: np.ndarray) -> int:
    """Empirical bias correction (Nagel et al. 2019, "Data-free quantization through weight
    equalization and bias correction", section 4.2): rounding 7-bit weights and 8-bit activations
    shifts each convolution's mean output per channel, and the shifts add up layer after layer.
    In network order, each quantised convolution's mean output on `patches` is measured with
    every earlier layer already corrected, and its int32 bias moved by the difference to the float
    model's. The weights and activation ranges stay as quantize_static chose them.

    Measured on ../shared/audio's 512 windows, before GPTQ rounding was added: top-1 agreement with
    the float model 0.859 -> 0.875, top-5 overlap 0.862 -> 0.871. Returns the number of
    convolutions corrected."""
    def means(model: onnx.ModelProto, names: list[str], optimise: bool) -> list[np.ndarray]:
        session = tapped_session(model, names, optimise)
        total: list = [0.0] * len(names)
        for i in range(0, len(patches), 50):
            outs = session.run(names, {"log_mel": patches[i:i + 50]})
            total = [t + o.astype(np.float64).mean(axis=(2, 3)).sum(0) for t, o in zip(total, outs)]
        return [t / len(patches) for t in total]

    reference = onnx.load(str(float_model))
    float_out = {n.name: n.output[0] for n in reference.graph.node if n.op_type == "Conv"}
    inits = {i.name: i for i in qdq.graph.initializer}
    producer = {o: n for n in qdq.graph.node for o in n.output}
    convs = []
    for node in qdq.graph.node:
        bias = producer.get(node.input[2]) if node.op_type == "Conv" and len(node.input) > 2 else None
        if bias is not None and bias.op_type == "DequantizeLinear" and node.name in float_out:
            convs.append((node, inits[bias.input[0]], numpy_helper.to_array(inits[bias.input[1]])))
    targets = means(reference, [float_out[node.name] for node, _, _ in convs], optimise=True)
    for (node, codes, scale), target in zip(convs, targets):
        shift = target - means(qdq, [node.output[0]], optimise=False)[0]
        corrected = numpy_helper.to_array(codes).astype(np.int64) + np.round(shift / scale).astype(np.int64)
        codes.CopyFrom(numpy_helper.from_array(corrected.astype(np.int32), codes.name))
    return len(convs)


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help=f"path or URL of yamnet.tflite (official: {OFFICIAL_URL})")
    ap.add_argument("--labels", type=Path, default=here.parent.parent / "shared/models/yamnet_class_map.csv",
                    help="yamnet_class_map.csv (index, mid, display_name)")
    ap.add_argument("-o", "--output", type=Path, default=here / "yamnet.onnx")
    ap.add_argument("--int8", type=Path, metavar="PATH",
                    help="also write an int8 model there (e.g. models/yamnet-int8.onnx), calibrated on real audio")
    ap.add_argument("--calibration", type=Path, action="append", metavar="DIR",
                    help="directory of recordings to calibrate the int8 model on (repeatable; default: "
                         + ", ".join(map(str, CALIBRATION_DIRS)) + ")")
    ap.add_argument("--calibration-patches", type=int, default=800)
    args = ap.parse_args()
    model, report = convert(args.source, args.labels)
    tmp = args.output.with_suffix(".onnx.tmp")
    onnx.save(model, tmp)
    tmp.replace(args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB): {json.dumps(report)}")
    if args.int8:
        patches = calibration_patches(args.calibration or list(CALIBRATION_DIRS), args.calibration_patches)
        tmp = args.int8.with_suffix(".onnx.tmp")
        report = quantize_int8(args.output, tmp, patches)
        tmp.replace(args.int8)
        print(f"wrote {args.int8} ({args.int8.stat().st_size / 1e6:.1f} MB): {json.dumps(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
