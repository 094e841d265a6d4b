from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_python


def test_reads_and_writes_under_the_project_are_classified(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "train.csv").write_text("1,2\n")
    (project / "both.txt").write_text("old\n")
    (project / "ignored").mkdir()
    (project / "ignored" / "x.txt").write_text("x\n")
    (tmp_path / "outside.txt").write_text("o\n")
    hook = Path(__file__).resolve().parents[2] / "src" / "lockstep" / "capture" / "iohook.py"
    result = run_python(
        f"""
        import importlib.util, json, os
        spec = importlib.util.spec_from_file_location("iohook", {str(hook)!r})
        iohook = importlib.util.module_from_spec(spec); spec.loader.exec_module(iohook)
        recorder = iohook.install()
        open("data/train.csv").read()
        open("model.bin", "wb").write(b"w")
        with open("both.txt", "r+") as f: f.write("new")
        os.close(os.open("flags.out", os.O_WRONLY | os.O_CREAT))
        open("ignored/x.txt").read()
        open({str(tmp_path / "outside.txt")!r}).read()
        open("gone.tmp", "w").close(); os.remove("gone.tmp")
        print(json.dumps(recorder.files(os.getcwd(), [os.path.join(os.getcwd(), "ignored")])))
        """,
        env={},
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    assert files == {"data/train.csv": 1, "model.bin": 2, "both.txt": 3, "flags.out": 2}
