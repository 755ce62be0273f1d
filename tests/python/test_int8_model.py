"""The int8 YAMNet the converter writes (models/yamnet-int8.onnx), against the float model on
real recordings it was not calibrated on: every clip of ../shared/audio, through the
independent numpy front-end."""
import numpy as np
import onnx
import pytest

import convert_yamnet
import yamnet_reference as ref

# Measured at commit time on the 80 clips (512 windows): top-1 0.908, float top-1 within the
# int8 top-5 0.984, top-5 sets overlapping 0.883. Without GPTQ rounding top-1 was 0.875, which
# the bound rejects; it sits half a point under the measured figure so that a machine whose
# float sums round a few weights the other way does not fail it.
TOP1_AT_LEAST = 0.895
FLOAT_TOP1_IN_INT8_TOP5_AT_LEAST = 0.97


@pytest.fixture(scope="module")
def int8_model(yamnet_onnx, tmp_path_factory):
    path = ref.REPO / "models" / "yamnet-int8.onnx"
    if not path.exists():
        path = tmp_path_factory.mktemp("int8") / "yamnet-int8.onnx"
        patches = convert_yamnet.calibration_patches(list(convert_yamnet.CALIBRATION_DIRS), 800)
        convert_yamnet.quantize_int8(yamnet_onnx, path, patches)
    return path


@pytest.fixture(scope="module")
def scores(yamnet_onnx, int8_model):
    patches = []
    for clip in ref.shared_clips():
        wav, rate = ref.load_wav(clip)
        x = ref.to_16k_mono(wav, rate)
        if x.size < ref.WINDOW_SAMPLES:
            x = np.pad(x, (0, ref.WINDOW_SAMPLES - x.size))
        patches.append(ref.patches(ref.log_mel(x)).astype(np.float32))
    patches = np.concatenate(patches)
    run = lambda path: ref.onnx_session(path).run(["scores"], {"log_mel": patches})[0]  # noqa: E731
    return run(yamnet_onnx), run(int8_model)


def test_int8_agrees_with_the_float_model_on_real_audio(scores):
    f, q = scores
    assert len(f) >= 500
    top1 = float((f.argmax(1) == q.argmax(1)).mean())
    in_top5 = float(np.mean([a in np.argsort(-b)[:5] for a, b in zip(f.argmax(1), q)]))
    print(f"int8 vs float on {len(f)} windows: top-1 {top1:.3f}, float top-1 in int8 top-5 {in_top5:.3f}")
    assert top1 >= TOP1_AT_LEAST
    assert in_top5 >= FLOAT_TOP1_IN_INT8_TOP5_AT_LEAST


def test_int8_is_quantised_smaller_and_keeps_the_descriptor(yamnet_onnx, int8_model):
    model = onnx.load(str(int8_model))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert int8_model.stat().st_size < yamnet_onnx.stat().st_size / 2
    want = {p.key: p.value for p in onnx.load(str(yamnet_onnx)).metadata_props}
    assert want.items() <= {p.key: p.value for p in model.metadata_props}.items()


def test_gptq_rounding_beats_nearest_rounding_on_correlated_inputs():
    # A layer whose inputs are correlated, as activations are: GPTQ must leave a smaller output
    # error ||(W - scale·codes) X|| than rounding each weight to its nearest code, and keep the
    # codes in range. Both shared (pointwise) and per-row (depthwise) Hessians.
    rng = np.random.default_rng(7)
    mix = rng.normal(size=(24, 24))
    x = mix @ rng.normal(size=(24, 4000))
    w = rng.normal(size=(16, 24))
    scale = np.abs(w).max(1) / 64
    def error(codes):
        return float(np.linalg.norm((w - codes * scale[:, None]) @ x))
    nearest = np.clip(np.round(w / scale[:, None]), -64, 64)
    shared = convert_yamnet.gptq_codes(w, x @ x.T, scale, 64)
    per_row = convert_yamnet.gptq_codes(w, np.broadcast_to(x @ x.T, (16, 24, 24)).copy(), scale, 64)
    assert np.abs(shared).max() <= 64
    assert error(shared) < 0.8 * error(nearest)
    assert np.array_equal(shared, per_row)
