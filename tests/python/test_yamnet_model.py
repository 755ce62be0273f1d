"""Parity of models/yamnet.onnx with the official TF-Lite YAMNet, measured on real recordings.

Both models get the same input: the TF-Lite graph's own internal log-mel patch. The float layers
(conv 1, depthwise 2-3) must agree to float precision; after them the TF-Lite kernels round
activations to 8 bits on the fly, so the end-to-end scores are compared with tolerances.
"""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import convert_yamnet
import yamnet_reference as ref

FLOAT_LAYERS = ref.TfliteYamnet.FLOAT_LAYERS
REPORT = ref.REPO / "target" / "yamnet_parity.json"


def all_windows() -> list[tuple[str, np.ndarray]]:
    out = []
    for clip in ref.shared_clips():
        wav, rate = ref.load_wav(clip)
        x = ref.to_16k_mono(wav, rate)
        if x.size < ref.WINDOW_SAMPLES:  # YAMNet pads short clips to one window
            x = np.pad(x, (0, ref.WINDOW_SAMPLES - x.size))
        out += [(f"{clip.stem}#{i}", w) for i, w in enumerate(ref.windows(x))]
    for name, x in ref.synthetic_signals().items():
        out += [(f"{name}#{i}", w) for i, w in enumerate(ref.windows(x))]
    return out


@pytest.fixture(scope="module")
def runs(yamnet_onnx):
    """Per window: the TF-Lite internals (default kernels), the TF-Lite scores with its reference
    kernels, yamnet.onnx on the TF-Lite log-mel, and each ONNX layer fed TF-Lite's own input."""
    tfl, tfl_ref = ref.TfliteYamnet(), ref.TfliteYamnet(reference_kernels=True)
    sess = ref.onnx_session(yamnet_onnx)
    layers = ref.layer_sessions(yamnet_onnx)
    results = []
    for name, window in all_windows():
        t = tfl.run(window)
        scores, embedding = sess.run(None, {"log_mel": t["log_mel"][None]})
        isolated = {}
        for layer, (source, s) in layers.items():
            fed = t["log_mel"][None] if source == "log_mel" else t[source][None]
            isolated[layer] = s.run(None, {source: fed})[0][0]
        results.append(dict(name=name, tflite=t, tflite_ref_scores=tfl_ref.run(window)["scores"],
                            scores=scores[0], embedding=embedding[0], isolated=isolated))
    return results


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def test_enough_real_recordings(runs):
    real = {r["name"].split("#")[0] for r in runs if "__" in r["name"]}
    assert len(real) >= 20, real
    assert len(runs) >= 300


def test_float_layers_match_tflite_to_1e_5_relative(runs):
    """Conv 1, depthwise 2 and 3 are float in the file: fed TF-Lite's own input they must agree
    to float precision (measured here: ~2e-7)."""
    worst = {}
    for r in runs:
        for layer in FLOAT_LAYERS:
            rel = relative(r["isolated"][layer], r["tflite"][layer])
            worst[layer] = max(worst.get(layer, 0.0), rel)
            assert rel <= 1e-5, f"{r['name']} {layer}: relative difference {rel:.2e}"
    _report(float_layers_max_relative=worst)


def test_int8_layers_differ_only_by_8_bit_rounding_of_their_input(runs):
    """The other 24 layers have int8 weights, dequantised here exactly; TF-Lite also rounds their
    input activations to 8 bits (1/255 of the range = 0.4 %), we do not. A wrong weight, axis or
    padding shows as an error of the size of the activations themselves, far above this."""
    per_layer = {}
    for r in runs:
        for layer, out in r["isolated"].items():
            if layer not in FLOAT_LAYERS and np.abs(r["tflite"][layer]).max() > 0:
                per_layer.setdefault(layer, []).append(relative(out, r["tflite"][layer]))
    assert len(per_layer) == 24
    medians = {k: float(np.median(v)) for k, v in per_layer.items()}
    _report(int8_layers_median_relative=medians,
            int8_layers_max_relative={k: float(np.max(v)) for k, v in per_layer.items()})
    for layer, med in medians.items():
        assert med <= 0.02, f"{layer}: median relative difference {med:.3f}"


def test_end_to_end_scores(runs):
    diffs = np.stack([np.abs(r["scores"] - r["tflite"]["scores"]) for r in runs])
    per_window_max = diffs.max(axis=1)
    top1 = np.mean([r["scores"].argmax() == r["tflite"]["scores"].argmax() for r in runs])
    # TF-Lite against itself: its default kernels against its reference kernels.
    self_diffs = np.stack([np.abs(r["tflite_ref_scores"] - r["tflite"]["scores"]) for r in runs])
    self_top1 = np.mean([r["tflite_ref_scores"].argmax() == r["tflite"]["scores"].argmax() for r in runs])
    figures = dict(
        windows=len(runs),
        mean_abs_score_diff=float(diffs.mean()),
        max_abs_score_diff=float(diffs.max()),
        p95_window_max_abs_score_diff=float(np.percentile(per_window_max, 95)),
        windows_over_0_1=int((per_window_max > 0.1).sum()),
        top1_agreement=float(top1),
        tflite_kernel_paths_mean_abs_diff=float(self_diffs.mean()),
        tflite_kernel_paths_max_abs_diff=float(self_diffs.max()),
        tflite_kernel_paths_windows_over_0_1=int((self_diffs.max(axis=1) > 0.1).sum()),
        tflite_kernel_paths_top1_agreement=float(self_top1),
        max_abs_embedding_diff=float(max(np.abs(r["embedding"] - r["tflite"]["embedding"]).max() for r in runs)),
    )
    _report(**figures)
    assert figures["mean_abs_score_diff"] <= 1e-3, figures
    assert figures["top1_agreement"] >= 0.95, figures
    # A max of 0.1 on every window is out of reach for any implementation: the 8-bit activation
    # rounding compounds through 24 layers, and TF-Lite's own two kernel paths differ by up to
    # 0.6 here. So the float model must be no further from TF-Lite than TF-Lite is from itself.
    assert figures["top1_agreement"] >= figures["tflite_kernel_paths_top1_agreement"], figures
    assert figures["mean_abs_score_diff"] <= figures["tflite_kernel_paths_mean_abs_diff"], figures
    assert figures["windows_over_0_1"] <= 1.25 * figures["tflite_kernel_paths_windows_over_0_1"], figures


def test_batch_of_nine_equals_nine_single_runs(runs, yamnet_onnx):
    sess = ref.onnx_session(yamnet_onnx)
    patches = np.stack([r["tflite"]["log_mel"] for r in runs[100:109]])
    batch_scores, batch_emb = sess.run(None, {"log_mel": patches})
    for i in range(9):
        s, e = sess.run(None, {"log_mel": patches[i:i + 1]})
        np.testing.assert_allclose(batch_scores[i], s[0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(batch_emb[i], e[0], rtol=0, atol=1e-5)


def test_interface_and_dynamic_batch(yamnet_onnx):
    m = onnx.load(str(yamnet_onnx))
    (inp,) = m.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "log_mel" and dims == ["N", 96, 64]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
    assert outs == {"scores": ["N", 521], "embedding": ["N", 1024]}
    sess = ref.onnx_session(yamnet_onnx)
    scores, emb = sess.run(None, {"log_mel": np.full((3, 96, 64), np.log(ref.LOG_OFFSET), np.float32)})
    assert scores.shape == (3, 521) and emb.shape == (3, 1024)
    assert ((scores >= 0) & (scores <= 1)).all()  # sigmoid outputs


def test_descriptor_metadata(yamnet_onnx):
    props = {p.key: p.value for p in onnx.load(str(yamnet_onnx)).metadata_props}
    assert props["audiotagger.sample_rate"] == "16000"
    assert int(props["audiotagger.window_samples"]) == ref.WINDOW_SAMPLES
    assert int(props["audiotagger.hop_samples"]) == ref.HOP_SAMPLES
    assert props["audiotagger.input_kind"] == "log_mel"
    assert float(props["audiotagger.mel.log_offset"]) == ref.LOG_OFFSET
    assert (float(props["audiotagger.mel.fmin"]), float(props["audiotagger.mel.fmax"])) == (ref.FMIN, ref.FMAX)
    assert int(props["audiotagger.mel.bands"]) == ref.BANDS
    assert int(props["audiotagger.mel.fft_length"]) == ref.FFT_LENGTH
    labels = json.loads(props["audiotagger.labels"])
    assert len(labels) == 521 and labels[0] == "Speech" and labels[132] == "Music"
    assert props["audiotagger.scores_are_probabilities"] == "true"


def test_url_source_and_refusal_of_other_models(tmp_path):
    url = (ref.SHARED / "models" / "yamnet.tflite").resolve().as_uri()  # file:// goes through urllib
    model, report = convert_yamnet.convert(url, ref.SHARED / "models" / "yamnet_class_map.csv")
    assert report["float_layers"] == ["layer1/conv", "layer2/depthwise_conv", "layer3/depthwise_conv"]
    assert report["conv_layers"] == 27 and 3.6e6 < report["parameters"] < 3.8e6
    bogus = tmp_path / "not_a_model.tflite"
    bogus.write_bytes(b"\0" * 64)
    with pytest.raises(Exception):
        convert_yamnet.convert(str(bogus), ref.SHARED / "models" / "yamnet_class_map.csv")


def test_published_mel_formula_reproduces_the_tflite_int8_mel_codes():
    graph = convert_yamnet.TfliteGraph((ref.SHARED / "models" / "yamnet.tflite").read_bytes())
    (_, mel), = [(k, op) for k, op in graph.ops() if k == "FULLY_CONNECTED"][:1]
    codes, scale = graph.int8_codes(int(mel.InputsAsNumpy()[1]))
    assert np.isclose(scale[0], ref.TFLITE_MEL_SCALE)
    np.testing.assert_array_equal(np.round(ref.mel_matrix().T / scale[0]), codes)


def _report(**figures):
    REPORT.parent.mkdir(exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data.update(figures)
    REPORT.write_text(json.dumps(data, indent=2))
