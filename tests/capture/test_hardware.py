from __future__ import annotations

import os
import shutil

from lockstep.capture.hardware import capture_hardware
from lockstep.capture.interpreter import capture_interpreter, lock_files


def test_hardware_facts() -> None:
    facts = capture_hardware()
    assert facts["os"]
    assert facts["cpu"]["logical_cores"] == os.cpu_count()
    assert facts["memory_bytes"] > 0
    if shutil.which("nvidia-smi") is None:
        assert "nvidia-smi not found" in facts["gpus"]["unavailable"]
    else:
        assert isinstance(facts["gpus"], list)


def test_interpreter_and_lock_files(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    root = Path(tmp_path)
    for name in (
        "requirements.txt",
        "requirements-dev.txt",
        "uv.lock",
        "pyproject.toml",
        "notes.txt",
    ):
        (root / name).write_text("x\n")
    assert lock_files(root) == [
        "pyproject.toml",
        "requirements-dev.txt",
        "requirements.txt",
        "uv.lock",
    ]
    assert capture_interpreter()["version"].count(".") == 2
