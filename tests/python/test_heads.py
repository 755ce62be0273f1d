"""The head training tool: deterministic, split by recording, and the exported graph computes what
the trainer's own forward pass computes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "models"))

import heads_build as hb  # noqa: E402
import heads_data as hd  # noqa: E402
import heads_export as hx  # noqa: E402
import heads_model as hm  # noqa: E402

TRAIN = REPO.parent / "shared" / "train"


def initialisers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("head_")}


def test_training_twice_on_a_tiny_slice_gives_the_same_head(tmp_path, yamnet_onnx):
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}.onnx"
        subprocess.run([sys.executable, str(REPO / "models" / "train_heads.py"), "--data", str(TRAIN),
                        "--backbone", str(yamnet_onnx), "-o", str(out), "--limit", "3", "--per-label", "3",
                        "--epochs", "2", "--no-debian", "--kind", "fusion"],
                       check=True, capture_output=True, text=True)
        runs.append(initialisers(out))
    assert runs[0].keys() == runs[1].keys() and "head_w" in runs[0]
    for name in runs[0]:
        np.testing.assert_allclose(runs[0][name], runs[1][name], atol=1e-6, rtol=0, err_msg=name)
    # The training run's validation files are whole recordings the head never heard.
    split = json.loads((tmp_path / "run0.split.json").read_text())
    assert split["validation_files"]


def test_split_keeps_every_recording_on_one_side():
    clips = hd.read_folder(TRAIN)
    train, val = hd.split(clips, 0.25, seed=0)
    assert not {c.recording for c in train} & {c.recording for c in val}
    # Pieces cut from one recording share it: glass comes as 1 s segments of few recordings.
    glass = [c for c in clips if c.label == "glass_breaking"]
    assert len({c.recording for c in glass}) < len(glass) / 2
    for label in {c.label for c in clips}:
        recs = {c.recording for c in clips if c.label == label}
        if len(recs) >= 2:
            assert any(c.label == label for c in val) and any(c.label == label for c in train), label


def test_recording_ids_group_pieces_of_one_source():
    f = hd.recording_id
    p = Path("x.wav")
    assert f("gunshot", "r@c:UrbanSound8K/audio/fold1/46654-6-0-0.wav", p) == f(
        "gunshot", "r@c:UrbanSound8K/audio/fold2/46654-6-3-1.wav", p)
    assert f("fireworks", "r@c:F/1-115545-A-48_part0.ogg", p) == f("fireworks", "r@c:F/1-115545-B-48_part1.ogg", p)
    assert f("clap", "r@c:A1/clap_large_5.wav [segment 3.00-6.00 s]", p) == f(
        "clap", "r@c:A1/clap_large_5.wav [segment 9.00-12.00 s]", p)
    assert f("scream", "r@c:d/screaming/OZDT_15_15_0_31_0_0_0.wav", p) == f(
        "scream", "r@c:d/screaming/OZDT_15_12_0_31_0_0_0.wav", p)
    assert f("gunshot", "r@c:U/46654-6-0-0.wav", p) != f("gunshot", "r@c:U/46656-6-0-0.wav", p)


@pytest.mark.parametrize("backbone_name,kind", [
    ("yamnet", "linear+scores"), ("yamnet", "mlp"), ("yamnet", "attention"), ("yamnet", "fusion"),
    ("ced", "fusion+scores"), ("ced", "attention"),
])
def test_exported_head_computes_what_the_trainer_computes(tmp_path, request, backbone_name, kind):
    path = request.getfixturevalue(f"{backbone_name}_onnx")
    backbone = hd.Backbone(path, threads=1)
    rng = np.random.default_rng(1)
    clips = [c for c in hd.read_folder(TRAIN) if c.label in ("gunshot", "glass_breaking", "bg_rain")][::20]
    windows = []
    for c in clips:
        audio = hd.load_audio(c.path)
        audio = np.pad(audio, (0, max(0, backbone.window - audio.size)))
        windows.append(audio[: backbone.window] * rng.uniform(0.2, 1.0))
    windows = np.stack(windows).astype(np.float32)
    feats = hb.pooled_views(backbone.features(windows), backbone.layout)
    labels = (rng.random((len(windows), 2)) < 0.5).astype(np.int8)
    head = hm.train(kind, feats, labels, seed=0, epochs=3, batch=8)
    before = hm.logits(head, feats)
    temps = hm.calibrate(head, feats, labels)
    expected = hm.predict(head, feats)
    # The temperatures divide the logits, so no class's windows change order.
    np.testing.assert_allclose(hm.logits(head, feats) * temps, before, rtol=1e-4, atol=1e-3)

    out = tmp_path / "composed.onnx"
    hx.write_model(path, head, ["a", "b"], out, {"data": "x", "classes": {}, "validation_files": []})
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    # The model's own input and score output, as its descriptor names them.
    name, output = meta["audiotagger.input_name"], meta["audiotagger.output.scores"]
    if backbone_name == "yamnet":
        import yamnet_reference as ref

        feed = np.stack([ref.log_mel(w) for w in windows]).astype(np.float32)
    else:
        feed = windows
    scores = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run([output], {name: feed})[0]
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run([output], {name: feed})[0]
    classes = plain.shape[1]
    assert scores.shape == (len(windows), classes + 2)
    # The AudioSet scores are the backbone's own; the head's follow them. The trainer saw the
    # embedding and pooled views in float16, the graph computes them in float32.
    np.testing.assert_allclose(scores[:, :classes], plain, atol=1e-6)
    np.testing.assert_allclose(scores[:, classes:], expected, atol=2e-3)
    assert json.loads(meta["audiotagger.labels"])[-2:] == ["head/a", "head/b"]
    assert meta["audiotagger.num_classes"] == str(classes + 2)


def test_a_user_folder_without_a_manifest_trains_a_head_the_element_can_load(tmp_path, yamnet_onnx):
    import shutil

    data = tmp_path / "my_sounds"
    for label, folder in (("knock", "knock"), ("bg_rain", "bg_rain"), ("clap", "clap")):
        (data / folder).mkdir(parents=True)
        for src in sorted((TRAIN / label).glob("*.wav"))[:6]:
            shutil.copy(src, data / folder / src.name)
    out = tmp_path / "my-heads.onnx"
    run = subprocess.run([sys.executable, str(REPO / "models" / "train_heads.py"), "--data", str(data),
                          "--classes", "knock", "--backbone", str(yamnet_onnx), "-o", str(out),
                          "--per-label", "6", "--epochs", "2", "--no-debian"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["audiotagger.labels"])[-1] == "head/knock"
    assert json.loads(meta["audiotagger.heads"])["classes"] == ["knock"]
    # Each file is its own recording: some go to validation, none to both sides.
    held = json.loads(out.with_suffix(".split.json").read_text())["validation_files"]
    assert any(f.startswith("knock/") for f in held)
    # A class that names no folder is refused with the folders there are.
    bad = subprocess.run([sys.executable, str(REPO / "models" / "train_heads.py"), "--data", str(data),
                          "--classes", "doorbell", "-o", str(tmp_path / "x.onnx"), "--no-debian"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "doorbell" in bad.stderr and "knock" in bad.stderr
