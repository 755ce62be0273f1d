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
