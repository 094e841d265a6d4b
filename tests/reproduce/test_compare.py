from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from lockstep.reproduce.compare import (
    CLOSE,
    DIFFERS,
    IDENTICAL,
    Tolerance,
    compare_files,
    compare_series,
    tolerance_from_pyproject,
)
from lockstep.tracking.history import MetricHistory


def series(values: list[float], steps: list[int] | None = None) -> MetricHistory:
    n = len(values)
    return MetricHistory(
        key="k",
        steps=np.asarray(steps or list(range(n)), dtype=np.int64),
        values=np.asarray(values, dtype=np.float64),
        times=np.zeros(n, dtype=np.float64),
    )


def test_series_identical_close_and_differing() -> None:
    tol = Tolerance(rtol=1e-6)
    assert (
        compare_series("k", series([1.0, math.nan]), series([1.0, math.nan]), tol).status
        == IDENTICAL
    )
    close = compare_series("k", series([1.0, 2.0]), series([1.0, 2.0 + 1e-9]), tol)
    assert close.status == CLOSE and close.first_step == 1
    far = compare_series("k", series([1.0, 2.0, 3.0]), series([1.0, 2.5, 3.0]), tol)
    assert far.status == DIFFERS and far.first_step == 1
    assert far.max_abs_diff == pytest.approx(0.5)
    per_key = compare_series(
        "k", series([1.0, 2.0]), series([1.0, 2.1]), Tolerance(rtol=1e-6, per_key={"k": 0.1})
    )
    assert per_key.status == CLOSE


def test_series_with_different_steps_never_reproduce() -> None:
    finding = compare_series("k", series([1.0, 2.0]), series([1.0, 2.0, 3.0]), Tolerance())
    assert finding.status == DIFFERS and "steps differ" in finding.detail
    one_sided = compare_series("k", series([]), series([1.0]), Tolerance())
    assert one_sided.status == DIFFERS and "only in run B" in one_sided.detail


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("path", "a", "b", "status"),
    [
        ("w.npy", npy(np.array([1.0, 2.0])), npy(np.array([1.0, 2.0 + 1e-9])), CLOSE),
        ("w.npy", npy(np.array([1.0, 2.0])), npy(np.array([1.0, 2.5])), DIFFERS),
        ("w.npy", npy(np.array([1.0, 2.0])), npy(np.array([1.0, 2.0, 3.0])), DIFFERS),
        ("m.csv", b"a,b\n1.0,2.0\n", b"a,b\n1.0000000001,2.0\n", CLOSE),
        ("m.csv", b"a,b\n1.0,2.0\n", b"a,c\n1.0,2.0\n", DIFFERS),
        (
            "r.json",
            json.dumps({"acc": 0.9, "n": 3}).encode(),
            json.dumps({"acc": 0.9 + 1e-12, "n": 3}).encode(),
            CLOSE,
        ),
        ("r.json", json.dumps({"acc": 0.9}).encode(), json.dumps({"acc": 0.8}).encode(), DIFFERS),
        ("notes.txt", b"a", b"b", DIFFERS),
    ],
)
def test_numeric_files(path: str, a: bytes, b: bytes, status: str) -> None:
    assert compare_files(path, a, b, Tolerance()).status == status


def test_npz_and_torch_state_dicts() -> None:
    left, right = io.BytesIO(), io.BytesIO()
    np.savez(left, w=np.ones(3), b=np.zeros(2))
    np.savez(right, w=np.ones(3) + 1e-10, b=np.zeros(2))
    assert compare_files("m.npz", left.getvalue(), right.getvalue(), Tolerance()).status == CLOSE
    torch = pytest.importorskip("torch")
    x, y = io.BytesIO(), io.BytesIO()
    torch.save({"layer.weight": torch.ones(2, 2), "step": 3}, x)
    torch.save({"layer.weight": torch.ones(2, 2) * 1.5, "step": 3}, y)
    finding = compare_files("model.pt", x.getvalue(), y.getvalue(), Tolerance())
    assert finding.status == DIFFERS and finding.max_abs_diff == pytest.approx(0.5)


def test_safetensors_outputs_are_compared_element_by_element() -> None:
    from safetensors.numpy import save

    a = save({"w": np.ones((2, 3), dtype=np.float32)})
    close = save({"w": np.ones((2, 3), dtype=np.float32) + np.float32(1e-7)})
    far = save({"w": np.full((2, 3), 2, dtype=np.float32)})
    assert a != close  # different bytes, the same numbers within tolerance
    assert compare_files("m.safetensors", a, close, Tolerance(rtol=1e-6)).status == CLOSE
    finding = compare_files("m.safetensors", a, far, Tolerance())
    assert finding.status == DIFFERS and finding.max_abs_diff == pytest.approx(1.0)


def test_pyproject_tolerances() -> None:
    text = "[tool.lockstep.verify]\nrtol = 1e-4\natol = 1e-8\ntol = { loss = 0.01 }\n"
    assert tolerance_from_pyproject(text) == {"rtol": 1e-4, "atol": 1e-8, "tol": {"loss": 0.01}}
