"""Backbone + head as one ONNX graph: the head's nodes read the backbone's own tensors (the
embedding, the last convolution, a middle layer, the AudioSet logits), and the model's `scores`
output becomes the AudioSet scores followed by the head's classes, so the element, its event
groups and every tool that reads a descriptor see one model with more classes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import heads_data as hd
import heads_model as hm

HEAD_PREFIX = "head/"


def _fold(w: np.ndarray, b: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights for raw inputs from weights for standardised ones: (x - m) / s @ W + b."""
    w2 = (w / std[:, None]).astype(np.float32)
    return w2, (b - (mean / std) @ w).astype(np.float32)


def head_nodes(head: hm.Head, tensors: dict[str, str], layout: str, opset: int) -> tuple[list, list, str]:
    """Nodes and initialisers computing the head's probabilities [N, K] from the backbone's
    tensors (`heads_data.backbone_tensors`), in the backbone's opset; returns the name of that
    output."""
    p, nodes, inits = head.params, [], []

    def const(name: str, value: np.ndarray) -> str:
        if not any(i.name == f"head_{name}" for i in inits):
            inits.append(numpy_helper.from_array(np.asarray(value), f"head_{name}"))
        return f"head_{name}"

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [f"head_{out}"], name=f"head/{out}", **attrs))
        return f"head_{out}"

    base = head.kind.split("+")[0]
    if base == "attention":
        x = tensors["last"]
        if layout == "nctf":
            x = node("Reshape", [x, const("positions_shape", np.array([0, 0, -1], np.int64))], "positions_cf")
            x = node("Transpose", [x], "positions", perm=[0, 2, 1])
        wf, bf = _fold(p["wf"], p["bf"], head.mean, head.std)
        wa, ba = _fold(p["wa"], p["ba"], head.mean, head.std)
        f = node("Add", [node("MatMul", [x, const("wf", wf)], "f_mm"), const("bf", bf)], "f")
        a = node("Add", [node("MatMul", [x, const("wa", wa)], "a_mm"), const("ba", ba)], "a")
        weights = node("Softmax", [a], "attention", axis=1)
        y = node("Mul", [weights, node("Sigmoid", [f], "f_prob")], "weighted")
        return nodes, inits, node("ReduceSum", [y, const("axis1", np.array([1], np.int64))], "probs", keepdims=0)
    if base == "fusion":
        parts = []
        for tag in ("middle", "last"):
            t = tensors[tag]
            if layout == "nctf":
                t = node("Transpose", [t], f"{tag}_t", perm=[0, 2, 1, 3])
                t = node("Reshape", [t, const(f"{tag}_shape", np.array([0, 0, -1], np.int64))], f"{tag}_tf")
            # ReduceMean and ReduceMax take their axes as an attribute up to opset 17, as an input from 18.
            if opset >= 18:
                mean = node("ReduceMean", [t, const("axis1", np.array([1], np.int64))], f"{tag}_mean", keepdims=0)
                mx = node("ReduceMax", [t, const("axis1", np.array([1], np.int64))], f"{tag}_max", keepdims=0)
            else:
                mean = node("ReduceMean", [t], f"{tag}_mean", axes=[1], keepdims=0)
                mx = node("ReduceMax", [t], f"{tag}_max", axes=[1], keepdims=0)
            parts.append(node("Add", [mean, mx], f"{tag}_pooled"))
        x = node("Concat", parts, "fused", axis=1)
    else:
        x = tensors["embedding"]
    if base == "mlp":
        w1, b1 = _fold(p["w1"], p["b1"], head.mean, head.std)
        h = node("Gemm", [x, const("w1", w1), const("b1", b1)], "hidden")
        x = node("Relu", [h], "hidden_relu")
        w, b = p["w"], p["b"]
    else:
        w, b = _fold(p["w"], p["b"], head.mean, head.std)
    z = node("Gemm", [x, const("w", w), const("b", b)], "logits_own")
    if head.kind.endswith("+scores"):
        ws, bs = _fold(p["ws"], np.zeros(w.shape[1], np.float32), head.score_mean, head.score_std)
        s = node("Clip", [tensors["logits"], const("lo", np.float32(-hm.LOGIT_CLIP)), const("hi", np.float32(hm.LOGIT_CLIP))],
                 "audioset_logits")
        z = node("Add", [z, node("Gemm", [s, const("ws", ws), const("bs", bs)], "logits_prior")], "logits_all")
    return nodes, inits, node("Sigmoid", [z], "probs")


def compose(backbone: onnx.ModelProto, head: hm.Head, classes: list[str], meta: dict) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(backbone)
    g = model.graph
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("audiotagger.scores_are_probabilities", "true") != "true":
        raise SystemExit("the backbone's scores are logits; the heads append probabilities to probabilities")
    scores = props.get("audiotagger.output.scores", "scores")
    tensors, layout = hd.backbone_tensors(backbone)
    if scores in tensors.values():  # a head reads the scores under their own name
        tensors = {k: ("audioset_scores" if v == scores else v) for k, v in tensors.items()}
    for n in g.node:  # the backbone's sigmoid now feeds the concatenation
        n.output[:] = ["audioset_scores" if o == scores else o for o in n.output]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    nodes, inits, probs = head_nodes(head, tensors, layout, opset)
    g.node.extend(nodes)
    g.initializer.extend(inits)
    g.node.append(helper.make_node("Concat", ["audioset_scores", probs], [scores], name="scores_with_heads", axis=1))
    labels = json.loads(props["audiotagger.labels"]) + [HEAD_PREFIX + c for c in classes]
    ids = json.loads(props.get("audiotagger.label_ids", "[]"))
    props.update({
        "audiotagger.model_name": f"{props.get('audiotagger.model_name', 'model')}+heads",
        "audiotagger.num_classes": str(len(labels)),
        "audiotagger.labels": json.dumps(labels, ensure_ascii=False),
        "audiotagger.heads": json.dumps({"kind": head.kind, "classes": classes}),
    })
    if ids:
        props["audiotagger.label_ids"] = json.dumps(ids + [""] * len(classes))
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    out = next(o for o in g.output if o.name == scores)
    out.CopyFrom(helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["N", len(labels)]))
    model.doc_string = (backbone.doc_string + f"; with trained heads ({head.kind}) for "
                        + ", ".join(classes) + ": see models/heads.md")
    training = {k: v for k, v in meta.items() if k not in ("validation_files",)}
    model.metadata_props.add(key="audiotagger.heads.training", value=json.dumps(training))
    onnx.checker.check_model(model, full_check=True)
    return model


def write_model(backbone_path: Path, head: hm.Head, classes: list[str], out: Path, meta: dict) -> None:
    model = compose(onnx.load(str(backbone_path)), head, classes, meta)
    tmp = out.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    # Which clips the head never heard: the event bench builds its validation mixtures from them.
    out.with_suffix(".split.json").write_text(json.dumps(
        {"data": meta["data"], "classes": meta["classes"], "validation_files": meta["validation_files"]}, indent=1))
