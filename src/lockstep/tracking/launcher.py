"""``lockstep run``: run any command as a recorded run, with zero code changes.

The parent (this process) owns the run: it snapshots the code before the
command starts, starts the command with the bootstrap on PYTHONPATH and the
seed in its environment, streams and stores its output, captures the
environment and hardware while it runs, and afterwards ingests what each
Python process of the run reported (seeds, determinism settings, files read
and written), stores inputs and outputs by digest and ends the run with the
command's exit status.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lockstep.capture.packages import installed_distributions
from lockstep.capture.result import Unavailable, as_json, gather
from lockstep.core.status import RunStatus
from lockstep.errors import UsageError
from lockstep.tracking import snapshot
from lockstep.tracking.api import begin_run
from lockstep.workspace import Workspace

BOOTSTRAP_DIR = Path(__file__).resolve().parent / "bootstrap"
MAX_SEED = 2**31 - 1
_STDERR_TAIL_LINES = 30


@dataclass(frozen=True, kw_only=True)
class LaunchRequest:
    argv: tuple[str, ...]
    name: str | None = None
    experiment: str | None = None
    seed: int | None = None
    deterministic: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    cwd: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LaunchResult:
    run_id: str
    name: str
    exit_code: int
    status: RunStatus


class _Tee(threading.Thread):
    """Copies a child's pipe to our terminal stream and to a log file, as it comes."""

    def __init__(self, source: IO[bytes], sink: IO[bytes] | None, log_path: Path) -> None:
        super().__init__(daemon=True, name=f"lockstep-tee-{log_path.stem}")
        self.source = source
        self.sink = sink
        self.log_path = log_path
        self.tail = bytearray()

    def run(self) -> None:
        fd = self.source.fileno()
        with open(self.log_path, "wb") as log_file:
            while chunk := os.read(fd, 1 << 16):
                log_file.write(chunk)
                self.tail = (self.tail + chunk)[-16384:]
                if self.sink is not None:
                    with contextlib.suppress(OSError, ValueError):
                        self.sink.write(chunk)
                        self.sink.flush()
        self.source.close()


class _GpuMemoryPoller(threading.Thread):
    """Peak GPU memory of the child's processes, where nvidia-smi can see it."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="lockstep-gpu-poll")
        self.pid = pid
        self.smi = shutil.which("nvidia-smi")
        self.peak_mib: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        if self.smi is None:
            return
        import psutil

        while not self.stop.wait(1.0):
            try:
                tree = {self.pid} | {p.pid for p in psutil.Process(self.pid).children(True)}
                out = subprocess.run(
                    [
                        self.smi,
                        "--query-compute-apps=pid,used_memory",
                        "--format=csv,noheader,nounits",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=False,
                ).stdout
            except Exception:  # the child ended or the driver did not answer
                continue
            used = sum(
                int(memory)
                for pid, _, memory in (line.partition(",") for line in out.splitlines())
                if pid.strip().isdigit() and int(pid) in tree and memory.strip().isdigit()
            )
            self.peak_mib = max(self.peak_mib or 0, used)

    def result(self) -> Any:
        if self.smi is None:
            return Unavailable(reason="no NVIDIA driver (nvidia-smi not found)").to_json()
        return self.peak_mib


@contextlib.contextmanager
def _forward_signals(process: subprocess.Popen[bytes], seen: list[int]) -> Iterator[None]:
    """While the child runs: Ctrl-C reaches it through the terminal (we only note it);
    SIGTERM and SIGHUP sent to us are passed on to it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note_interrupt(signum: int, _frame: Any) -> None:
        seen.append(signum)

    def forward(signum: int, _frame: Any) -> None:
        seen.append(signum)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, note_interrupt),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _child_env(
    workspace: Workspace,
    run_id: str,
    seed: int,
    request: LaunchRequest,
    environ: Mapping[str, str],
    capture_dir: Path,
) -> dict[str, str]:
    env = dict(environ)
    env.update(request.extra_env)
    env["LOCKSTEP_RUN_ID"] = run_id
    env["LOCKSTEP_HOME"] = str(workspace.store_dir)
    if workspace.settings.db_url:
        env["LOCKSTEP_DB_URL"] = workspace.settings.db_url
    env["LOCKSTEP_SEED"] = str(seed)
    env["LOCKSTEP_DETERMINISTIC"] = "1" if request.deterministic else "0"
    env["LOCKSTEP_CAPTURE_DIR"] = str(capture_dir)
    env["LOCKSTEP_PROJECT_ROOT"] = str(workspace.project_root)
    env["LOCKSTEP_CAPTURE_IGNORE"] = os.pathsep.join(
        [str(workspace.store_dir), str(workspace.project_root / ".git")]
    )
    env["LOCKSTEP_PARENT_PREFIX"] = sys.prefix
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BOOTSTRAP_DIR), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("PYTHONHASHSEED", str(seed))
    env.setdefault("PYTHONUNBUFFERED", "1")  # stream output as it is printed
    if request.deterministic:
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        env.setdefault("TF_DETERMINISTIC_OPS", "1")
    return env


def _read_reports(capture_dir: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(capture_dir.glob("process-*.json")):
        with contextlib.suppress(OSError, ValueError):
            reports.append(json.loads(path.read_text(encoding="utf-8")))
    return reports


def _status_of(wait_status: int, seen_signals: list[int]) -> tuple[int, RunStatus]:
    code = os.waitstatus_to_exitcode(wait_status)
    if code < 0:
        return 128 - code, RunStatus.KILLED
    if code == 0:
        return 0, RunStatus.FINISHED
    if seen_signals:
        return code, RunStatus.KILLED
    return code, RunStatus.FAILED


def launch(
    workspace: Workspace,
    request: LaunchRequest,
    *,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> LaunchResult:
    """Run the command of request as a recorded run; returns its exit code and status."""
    if not request.argv:
        raise UsageError("give the command to run after --, e.g. lockstep run -- python train.py")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}")
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED)
    cwd = (request.cwd or workspace.settings.cwd).resolve()
    run = begin_run(
        workspace,
        experiment=request.experiment,
        name=request.name,
        params=request.params,
        tags=request.tags,
        note=request.note,
    )
    config = workspace.settings.config.get("capture", {})
    capture_dir = workspace.store_dir / "tmp" / f"run-{run.id}"
    capture_dir.mkdir(parents=True, exist_ok=True)
    try:
        # The code must be read before the command can change it.
        code = as_json(
            gather(
                lambda: snapshot.code_section(
                    project_root=workspace.project_root,
                    store_dir=workspace.store_dir,
                    meta=workspace.meta,
                    objects=workspace.objects,
                    config=config,
                )
            )
        )
        env = _child_env(workspace, run.id, seed, request, environ, capture_dir)
        return _run_child(
            workspace,
            run,
            request,
            env,
            cwd,
            seed,
            code,
            capture_dir,
            config,
            environ,
            stdout,
            stderr,
        )
    except BaseException as exc:
        if not run.finished:
            status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
            run.finish(status, f"lockstep run failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(capture_dir, ignore_errors=True)


def _run_child(
    workspace: Workspace,
    run: Any,
    request: LaunchRequest,
    env: dict[str, str],
    cwd: Path,
    seed: int,
    code: Any,
    capture_dir: Path,
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> LaunchResult:
    objects = workspace.objects
    command: dict[str, Any] = {"argv": list(request.argv), "cwd": _relative(cwd, workspace)}
    started = time.time()
    try:
        process = subprocess.Popen(
            list(request.argv),
            cwd=cwd,
            env=env,
            stdin=None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
        message = (
            f"command not found: {request.argv[0]}"
            if exit_code == 127
            else f"cannot execute {request.argv[0]}: {exc.strerror}"
        )
        command.update(exit_code=exit_code, duration=0.0, error=message)
        workspace.meta.set_sections(
            run.id, {"command": command, "seed": {"value": seed}, "code": code}
        )
        run.finish(RunStatus.FAILED, message)
        if stderr is not None:
            stderr.write(f"lockstep: {message}\n".encode())
            stderr.flush()
        return LaunchResult(
            run_id=run.id, name=run.name, exit_code=exit_code, status=RunStatus.FAILED
        )
    assert process.stdout is not None and process.stderr is not None
    tees = [
        _Tee(process.stdout, stdout, capture_dir / "stdout.log"),
        _Tee(process.stderr, stderr, capture_dir / "stderr.log"),
    ]
    for tee in tees:
        tee.start()
    gpu = _GpuMemoryPoller(process.pid)
    gpu.start()
    seen_signals: list[int] = []
    with _forward_signals(process, seen_signals):
        # While the command runs: what does not depend on it.
        parent_packages = gather(installed_distributions)
        hardware = as_json(gather(snapshot.hardware_section))
        _, wait_status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    exit_code, status = _status_of(wait_status, seen_signals)
    process.returncode = exit_code  # waited for by os.wait4, which also gives its rusage
    gpu.stop.set()
    for tee in tees:
        tee.join()

    reports = _read_reports(capture_dir)
    main = next((r for r in reports if r.get("main")), reports[0] if reports else None)
    command.update(
        exit_code=exit_code,
        duration=ended - started,
        python=main is not None,
        peak_rss_bytes=usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
        cpu_user_seconds=usage.ru_utime,
        cpu_system_seconds=usage.ru_stime,
        peak_gpu_memory_mib=gpu.result(),
        stdout=snapshot.objects_entry(objects, (capture_dir / "stdout.log").read_bytes()),
        stderr=snapshot.objects_entry(objects, (capture_dir / "stderr.log").read_bytes()),
        signals=[signal.Signals(s).name for s in seen_signals],
    )
    if main is None:
        seeds: dict[str, Any] = {
            "note": "the command started no Python process; "
            "only PYTHONHASHSEED and the environment carry the seed"
        }
        determinism: dict[str, Any] = {}
        packages: Any = parent_packages
        interpreter = None
        packages_source = "lockstep's interpreter (the command ran no Python)"
    else:
        seeds = main.get("seeds", {})
        determinism = main.get("determinism", {})
        interpreter = {
            "version": main["version"].split()[0],
            "executable": main["executable"],
            "prefix": main["prefix"],
            "full_version": main["version"],
        }
        if "packages" in main:
            packages, packages_source = main["packages"], "the run's interpreter"
        elif main.get("prefix") == sys.prefix:
            packages, packages_source = parent_packages, "the run's interpreter"
        else:
            packages = Unavailable(reason="the Python process ended before reporting packages")
            packages_source = "none"
    environment = snapshot.environment_section(
        project_root=workspace.project_root,
        objects=objects,
        # The user's variables (what a rerun restores), not the ones lockstep adds.
        environ={**environ, **request.extra_env},
        config=config,
        packages=packages if isinstance(packages, (list, Unavailable)) else None,
        interpreter=interpreter,
    )
    environment["packages_source"] = packages_source

    files: dict[str, int] = {}
    for report in reports:
        for path, kind in report.get("files", {}).items():
            files[path] = files.get(path, 0) | int(kind)
    ignored = snapshot.ignore_patterns(config)
    files = {p: k for p, k in files.items() if not snapshot.matches_any(p, ignored)}
    inputs, outputs = snapshot.file_artifacts(workspace.project_root, files, objects)
    if inputs or outputs:
        workspace.meta.add_artifacts(run.id, [*inputs, *outputs])

    errors = [f"pid {r['pid']}: {e}" for r in reports for e in r.get("errors", [])]
    workspace.meta.set_sections(
        run.id,
        {
            "command": command,
            "seed": {
                "value": seed,
                "source": "given" if request.seed is not None else "drawn",
                "pythonhashseed": env.get("PYTHONHASHSEED"),
                "libraries": seeds,
            },
            "determinism": {"requested": request.deterministic, **determinism},
            "code": code,
            "environment": environment,
            "hardware": hardware,
            **({"capture_errors": errors} if errors else {}),
        },
    )
    error = None
    if status is not RunStatus.FINISHED:
        tail = bytes(tees[1].tail).decode(errors="replace").splitlines()[-_STDERR_TAIL_LINES:]
        error = f"exit code {exit_code}" + ("\n" + "\n".join(tail) if tail else "")
    run.finish(status, error)
    return LaunchResult(run_id=run.id, name=run.name, exit_code=exit_code, status=status)


def _relative(path: Path, workspace: Workspace) -> str:
    try:
        return path.relative_to(workspace.project_root).as_posix() or "."
    except ValueError:
        return str(path)
