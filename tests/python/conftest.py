import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models"))

import yamnet_reference as ref  # noqa: E402


@pytest.fixture(scope="session")
def yamnet_onnx(tmp_path_factory) -> Path:
    """The model the set-up built; converted afresh if it is missing."""
    path = REPO / "models" / "yamnet.onnx"
    if not path.exists():
        import convert_yamnet

        model, _ = convert_yamnet.convert(str(ref.SHARED / "models" / "yamnet.tflite"),
                                          ref.SHARED / "models" / "yamnet_class_map.csv")
        import onnx

        path = tmp_path_factory.mktemp("model") / "yamnet.onnx"
        onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def ced_onnx(tmp_path_factory) -> Path:
    """CED-Tiny converted afresh from ../shared by models/convert_ced.py."""
    import convert_ced

    ced = ref.SHARED / "models" / "ced"
    path = tmp_path_factory.mktemp("ced") / "ced-tiny.onnx"
    convert_ced.convert(str(ced / "ced_tiny.onnx"), ced / "class_labels_indices.csv", str(path))
    return path
