"""Format summaries from real files: what each says is there, read without loading it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lockstep.models.summary import NO_OPTIMIZER, pickle_classes, summarise

torch = pytest.importorskip("torch")


def _model() -> tuple[object, object, object]:
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.Adam(net.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    net(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return net, optimizer, scheduler


def test_a_full_checkpoint_names_every_piece_of_training_state(tmp_path: Path) -> None:
    net, optimizer, scheduler = _model()
    path = tmp_path / "ckpt.pt"
    torch.save(
        {
            "model": net.state_dict(),  # type: ignore[attr-defined]
            "optimizer": optimizer.state_dict(),  # type: ignore[attr-defined]
            "scheduler": scheduler.state_dict(),  # type: ignore[attr-defined]
            "epoch": 7,
            "rng_state": torch.get_rng_state(),
            "scaler": torch.amp.GradScaler("cpu").state_dict(),
        },
        path,
    )
    summary = summarise(path, "ckpt.pt")
    assert summary["format"] == "pytorch"
    assert summary["kind"] == "checkpoint"
    # The model's four tensors (two weights, two biases), not the optimizer's moments.
    assert summary["tensors"] == 4
    assert summary["parameters"] == 4 * 8 + 8 + 8 * 2 + 2
    assert summary["dtypes"] == {"float32": 4}
    assert summary["training_state"] == {
        "optimizer": True,
        "lr_scheduler": True,
        "grad_scaler": True,
        "rng_state": True,
        "epoch": 7,
    }
    assert summary["resumable"] is True
    assert summary["flags"] == []
    assert summary["tensor_table"]["model.0.weight"] == [[8, 4], "float32"]


def test_weights_alone_are_flagged_as_not_resumable(tmp_path: Path) -> None:
    net, _, _ = _model()
    path = tmp_path / "weights.pt"
    torch.save(net.state_dict(), path)  # type: ignore[attr-defined]
    summary = summarise(path, "weights.pt")
    assert summary["kind"] == "state dict"
    assert summary["tensors"] == 4
    assert summary["training_state"]["optimizer"] is False
    assert summary["resumable"] is False
    assert summary["flags"] == [NO_OPTIMIZER]


def test_a_pickled_module_is_read_without_importing_its_classes(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    source = tmp_path / "custom_net.py"
    source.write_text(
        "import torch\nclass Custom(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.layer = torch.nn.Linear(3, 5, dtype=torch.float64)\n"
    )
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("custom_net", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_net"] = module
    spec.loader.exec_module(module)
    torch.save(module.Custom(), path)
    del sys.modules["custom_net"]  # reading must not need (or import) it
    summary = summarise(path, "module.pt")
    assert "custom_net" not in sys.modules
    assert summary["kind"] == "pickled module"
    assert "custom_net.Custom" in summary["classes"]
    assert summary["dtypes"] == {"float64": 2}
    assert summary["parameters"] == 3 * 5 + 5


def test_safetensors_names_shapes_and_dtypes(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file(
        {"embed": torch.zeros(10, 3, dtype=torch.bfloat16), "head": torch.zeros(3)},
        path,
        metadata={"format": "pt"},
    )
    summary = summarise(path, "model.safetensors")
    assert summary["format"] == "safetensors"
    assert summary["tensors"] == 2
    assert summary["parameters"] == 33
    assert summary["tensor_table"] == {"embed": [[10, 3], "bf16"], "head": [[3], "f32"]}
    assert summary["metadata"] == {"format": "pt"}


@pytest.fixture
def estimator() -> object:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).random((30, 3))
    return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=2)).fit(
        x, x[:, 0] > 0.5
    )


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib-zlib", "joblib-gzip", "skops"])
def test_scikit_learn_models_name_their_estimator(
    tmp_path: Path, estimator: object, how: str
) -> None:
    path = tmp_path / f"model.{how}"
    if how == "pickle":
        path.write_bytes(pickle.dumps(estimator))
    elif how.startswith("joblib"):
        import joblib

        compress = {"joblib": 0, "joblib-zlib": 3, "joblib-gzip": ("gzip", 3)}[how]
        joblib.dump(estimator, path, compress=compress)
    else:
        import skops.io

        skops.io.dump(estimator, path)
    summary = summarise(path, path.name)
    assert summary["format"] == "scikit-learn"
    assert summary["estimator"] == "sklearn.pipeline.Pipeline"
    assert "sklearn.preprocessing._data.StandardScaler" in summary["classes"]


def test_class_names_come_from_the_stream_and_nothing_runs(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(tmp_path / "ran"),))

    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps({"payload": Boom()}))
    with open(path, "rb") as handle:
        assert any(
            c.startswith("pathlib") and c.endswith("Path.touch") for c in pickle_classes(handle)
        )
    summary = summarise(path, "hostile.pkl")
    assert summary["format"] == "pickle"
    assert not (tmp_path / "ran").exists()


def test_onnx_opset_inputs_and_outputs(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    summary = summarise(path, "model.onnx")
    assert summary["opset"] == {"ai.onnx": 17}
    assert summary["inputs"] == [{"name": "x", "type": "float", "shape": ["batch", 4]}]
    assert summary["outputs"][0]["name"] == "y"


def test_unknown_and_damaged_files_never_raise(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    assert summarise(text, "notes.txt") == {"format": "unknown"}
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04garbage")
    summary = summarise(broken, "broken.pt")
    assert summary["format"] == "unknown"
    assert "could not be read" in summary["note"]
