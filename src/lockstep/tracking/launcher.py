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
from typing import IO, TYPE_CHECKING, Any

from lockstep.capture.envvars import capture_variables
from lockstep.capture.iohook import WRITE
from lockstep.capture.packages import installed_distributions
from lockstep.capture.result import Unavailable, as_json, gather
from lockstep.core.ids import new_run_id
from lockstep.core.names import new_run_name
from lockstep.core.status import RunStatus
from lockstep.errors import UsageError
from lockstep.objects import guard
from lockstep.objects.store import LocalObjectStore
from lockstep.settings import Settings
from lockstep.tracking import snapshot
from lockstep.workspace import locate

if TYPE_CHECKING:  # SQLAlchemy loads while the command already runs
    from lockstep.tracking.metric_files import MetricFiles
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
    # A rerun runs in a rebuilt tree but records into the original store.
    project_root: Path | None = None
    # A rerun: the original's code section and project root. When the rebuilt code is the
    # same code, the new run records the original's (never the temporary tree it ran in).
    origin_code: Mapping[str, Any] | None = None
    origin_project_root: str | None = None
    # Files the rerun restored as inputs (paths relative to the code root): not code.
    origin_restored: tuple[str, ...] = ()
    # Variables to take out of the command's environment (a rerun: allowlisted ones the
    # original run did not have).
    remove_env: tuple[str, ...] = ()
    # Metrics read from what the command printed: None takes [capture]
    # metrics_from_output; the pattern, None for [capture] metrics_pattern or the default.
    metrics_from_output: bool | None = None
    metrics_pattern: str | None = None
    # Metric logs the command writes as CSV are read (a rerun: only when its original's
    # were, so a run recorded before this was read compares like with like).
    metrics_from_files: bool = True


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
        self.lost_bytes = 0  # output that could not be stored (a full disk, a size limit)
        self.store_error = ""

    def run(self) -> None:
        # Whatever happens to the log, the pipe is drained to the end: a child blocked on
        # a full pipe would never finish.
        fd = self.source.fileno()
        log_file: IO[bytes] | None = None
        try:
            # Unbuffered: what was stored and what was lost are counted to the byte.
            log_file = open(self.log_path, "wb", buffering=0)  # noqa: SIM115  # closed below
        except OSError as exc:
            self.store_error = exc.strerror or str(exc)
        while chunk := os.read(fd, 1 << 16):
            if log_file is not None:
                written = 0
                try:
                    written = log_file.write(chunk) or 0
                    if written < len(chunk):  # a partial write: the next one would fail
                        written += log_file.write(chunk[written:]) or 0
                except OSError as exc:
                    self.store_error = exc.strerror or str(exc)
                    with contextlib.suppress(OSError):
                        log_file.close()  # what was written before stays
                    log_file = None
                self.lost_bytes += len(chunk) - written
            else:
                self.lost_bytes += len(chunk)
            self.tail = (self.tail + chunk)[-16384:]
            if self.sink is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.sink.write(chunk)
                    self.sink.flush()
        if log_file is not None:
            with contextlib.suppress(OSError):
                log_file.close()
        self.source.close()

    def entry(self, objects: LocalObjectStore) -> dict[str, Any]:
        """The stored output (what could be stored of it, and how much could not)."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            data = b""
        entry = snapshot.objects_entry(objects, data)
        if self.lost_bytes or self.store_error:
            entry.update(lost_bytes=self.lost_bytes, incomplete=True, error=self.store_error)
        return entry


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
def _forward_signals(process: subprocess.Popen[bytes] | None, seen: list[int]) -> Iterator[None]:
    """While the child runs: Ctrl-C reaches it through the terminal (we only note it);
    SIGTERM and SIGHUP sent to us are passed on to it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note_interrupt(signum: int, _frame: Any) -> None:
        seen.append(signum)

    def forward(signum: int, _frame: Any) -> None:
        seen.append(signum)
        if process is not None:
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


@dataclass(frozen=True, kw_only=True)
class _Where:
    """Where the run lives, known without opening the store (no SQL)."""

    store_dir: Path
    project_root: Path
    db_url: str | None


@dataclass(frozen=True, kw_only=True)
class _Launch:
    """One `lockstep run`: what was decided before the command started."""

    settings: Settings
    where: _Where
    request: LaunchRequest
    env: dict[str, str]  # the command's environment
    environ: Mapping[str, str]  # the user's environment
    cwd: Path
    seed: int
    code: Any  # the code section, or Unavailable
    capture_dir: Path
    config: Mapping[str, Any]
    run_id: str
    name: str
    started: float
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None
    hold: contextlib.ExitStack  # the gc guard, released once the code is recorded


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    """What the command did, and what was captured while it ran."""

    command: dict[str, Any]
    ended: float
    exit_code: int
    status: RunStatus
    usage: Any  # resource.struct_rusage from wait4
    gpu: _GpuMemoryPoller
    tees: list[_Tee]
    seen_signals: list[int]
    parent_packages: Any
    hardware: Any
    metric_files: MetricFiles | None  # the metric logs read while it ran


def _child_env(
    where: _Where,
    run_id: str,
    seed: int,
    request: LaunchRequest,
    environ: Mapping[str, str],
    capture_dir: Path,
    started: float,
) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k not in request.remove_env}
    env.update(request.extra_env)
    env["LOCKSTEP_RUN_ID"] = run_id
    env["LOCKSTEP_HOME"] = str(where.store_dir)
    if where.db_url:
        env["LOCKSTEP_DB_URL"] = where.db_url
    env["LOCKSTEP_SEED"] = str(seed)
    env["LOCKSTEP_DETERMINISTIC"] = "1" if request.deterministic else "0"
    env["LOCKSTEP_CAPTURE_DIR"] = str(capture_dir)
    env["LOCKSTEP_PROJECT_ROOT"] = str(where.project_root)
    env["LOCKSTEP_CAPTURE_IGNORE"] = os.pathsep.join(
        [str(where.store_dir), str(where.project_root / ".git")]
    )
    env["LOCKSTEP_PARENT_PREFIX"] = sys.prefix
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BOOTSTRAP_DIR), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("PYTHONHASHSEED", str(seed))
    # Tools that embed a date (matplotlib's PDF and SVG, reproducible-build toolchains) take
    # this one instead of the clock; a rerun gets the original's, so their bytes repeat.
    env.setdefault("SOURCE_DATE_EPOCH", str(int(started)))
    env.setdefault("PYTHONUNBUFFERED", "1")  # stream output as it is printed
    if request.deterministic:
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        env.setdefault("TF_DETERMINISTIC_OPS", "1")
    return env


def _point_mlflow(env: dict[str, str], settings: Settings) -> None:
    """Where the command's MLflow client writes, unless the user set MLFLOW_TRACKING_URI:
    the lockstep server in use (its MLflow API, with the same token), or this run itself
    (the bootstrap points MLflow at the local store where lockstep's plugin is installed,
    and the command's first MLflow run is this run)."""
    if env.get("MLFLOW_TRACKING_URI"):
        return
    if settings.tracking_uri:
        served = settings.with_login()
        env["MLFLOW_TRACKING_URI"] = served.tracking_uri or settings.tracking_uri
        if served.token and not env.get("MLFLOW_TRACKING_TOKEN"):
            env["MLFLOW_TRACKING_TOKEN"] = served.token
        return
    env["LOCKSTEP_MLFLOW"] = "1"


def _read_reports(capture_dir: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(capture_dir.glob("process-*.json")):
        with contextlib.suppress(OSError, ValueError):
            reports.append(json.loads(path.read_text(encoding="utf-8")))
    return reports


def _read_fingerprints(capture_dir: Path, main: dict[str, Any] | None) -> Any:
    """The tensor fingerprints of `lockstep audit` (the main Python process's, if several)."""
    found = sorted(capture_dir.glob("fingerprints-*.json"))
    if main is not None:
        mine = capture_dir / f"fingerprints-{main['pid']}.json"
        found = [mine] if mine.exists() else found
    for path in found:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text(encoding="utf-8"))
    return None


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
    settings: Settings,
    request: LaunchRequest,
    *,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> LaunchResult:
    """Run the command of request as a recorded run; returns its exit code and status.

    The command starts as soon as the code is snapshotted; the store is opened
    and the run recorded while it runs, so a real workload hides lockstep's setup.
    """
    if not request.argv:
        raise UsageError("give the command to run after --, e.g. lockstep run -- python train.py")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}")
    store_dir, project_root = locate(settings, create=True)
    project_root = request.project_root or project_root
    settings = settings.with_config(store_dir)
    where = _Where(store_dir=store_dir, project_root=project_root, db_url=settings.db_url)
    objects = LocalObjectStore(store_dir / "objects")
    config = settings.config.get("capture", {})
    if _printed_setting(request, config)[0]:
        _printed_pattern(request, config)  # a bad pattern is refused before the command runs
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED)
    started = time.time()
    run_id = new_run_id(int(started * 1000))
    name = request.name or new_run_name()
    cwd = (request.cwd or settings.cwd).resolve()
    capture_dir = store_dir / "tmp" / f"run-{run_id}"
    capture_dir.mkdir(parents=True, exist_ok=True)
    # gc waits while the code's objects are stored and until the run records them.
    hold = contextlib.ExitStack()
    hold.enter_context(guard.writing(objects.root))
    try:
        # The code must be read before the command can change it.
        code = gather(
            lambda: snapshot.snapshot_code(
                project_root=project_root, store_dir=store_dir, objects=objects, config=config
            )
        )
        env = _child_env(where, run_id, seed, request, environ, capture_dir, started)
        _point_mlflow(env, settings)
        job = _Launch(
            settings=settings,
            where=where,
            request=request,
            env=env,
            environ=environ,
            cwd=cwd,
            seed=seed,
            code=code,
            capture_dir=capture_dir,
            config=config,
            run_id=run_id,
            name=name,
            started=started,
            stdout=stdout,
            stderr=stderr,
            hold=hold,
        )
        return _supervise(job)
    finally:
        hold.close()
        shutil.rmtree(capture_dir, ignore_errors=True)


def _supervise(job: _Launch) -> LaunchResult:
    """Start the command, record the run while it runs, wait for it."""
    from lockstep.capture.secrets import redact_argv

    argv, redacted = redact_argv(job.request.argv)
    command: dict[str, Any] = {
        "argv": argv,
        "cwd": _relative(job.cwd, job.where),
        "project_root": job.request.origin_project_root or str(job.where.project_root),
        "source_date_epoch": job.env.get("SOURCE_DATE_EPOCH"),
    }
    if job.request.origin_project_root:
        command["ran_in"] = str(job.where.project_root)
    if redacted:
        # Never stored: a rerun takes each value from LOCKSTEP_SECRET_<NAME>.
        command["redacted"] = [r.to_json() for r in redacted]
    try:
        process: subprocess.Popen[bytes] | None = subprocess.Popen(
            list(job.request.argv),
            cwd=job.cwd,
            env=job.env,
            stdin=None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Only prctl runs there, and before lockstep starts threads of its own.
            preexec_fn=_die_with_parent(),  # noqa: PLW1509
        )
        start_error = None
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        process = None
        exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
        start_error = (
            f"command not found: {job.request.argv[0]}"
            if exit_code == 127
            else f"cannot execute {job.request.argv[0]}: {exc.strerror}"
        )

    seen_signals: list[int] = []
    tees: list[_Tee] = []
    gpu: _GpuMemoryPoller | None = None
    with _forward_signals(process, seen_signals):
        if process is not None:
            assert process.stdout is not None and process.stderr is not None
            tees = [
                _Tee(process.stdout, job.stdout, job.capture_dir / "stdout.log"),
                _Tee(process.stderr, job.stderr, job.capture_dir / "stderr.log"),
            ]
            for tee in tees:
                tee.start()
            gpu = _GpuMemoryPoller(process.pid)
            gpu.start()
        try:
            # While the command runs: open the store, record the run, capture the rest.
            # (Imported only now: SQLAlchemy takes longer to load than many commands run.)
            from lockstep.tracking.api import begin_run
            from lockstep.workspace import Workspace

            workspace = Workspace.open(job.settings)
            run = begin_run(
                workspace,
                experiment=job.request.experiment,
                name=job.name,
                params=job.request.params,
                tags=job.request.tags,
                note=job.request.note,
                run_id=job.run_id,
                start_time=job.started,
            )
        except BaseException:
            if process is not None:  # no record, no run: stop the command
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                process.wait()
            raise
        try:
            if isinstance(job.code, dict) and job.request.origin_code is None:
                snapshot.drop_earlier_outputs(job.code, workspace.meta, job.where.project_root)
            if process is None:
                assert start_error is not None
                command.update(exit_code=exit_code, duration=0.0, error=start_error)
                workspace.meta.set_sections(
                    run.id,
                    {"command": command, "seed": {"value": job.seed}, "code": as_json(job.code)},
                )
                run.finish(RunStatus.FAILED, start_error)
                if job.stderr is not None:
                    job.stderr.write(f"lockstep: {start_error}\n".encode())
                    job.stderr.flush()
                return LaunchResult(
                    run_id=run.id, name=run.name, exit_code=exit_code, status=RunStatus.FAILED
                )
            # Recorded now, not only at the end: should this process be killed, the run
            # still names its command, code, seed and machine, and can be rerun.
            early = {
                "command": command,
                "seed": {"value": job.seed, "source": _seed_source(job)},
                "determinism": {"requested": job.request.deterministic},
                "code": _code_section(job),
            }
            workspace.meta.set_sections(run.id, early)
            job.hold.close()
            parent_packages = gather(installed_distributions)
            hardware = as_json(gather(snapshot.hardware_section))
            workspace.meta.set_sections(
                run.id,
                {
                    "hardware": hardware,
                    "environment": {
                        "packages": as_json(parent_packages),
                        "packages_source": "lockstep's interpreter (the run has not ended)",
                        "variables": capture_variables(
                            {**job.environ, **job.request.extra_env}, job.config.get("env", ())
                        ),
                    },
                },
            )
            metric_files = _watch_metric_files(job, workspace, run.id)
            try:
                _, wait_status, usage = os.wait4(process.pid, 0)
            finally:
                if metric_files is not None:
                    metric_files.stop()
        except BaseException as exc:
            if not run.finished:
                interrupted = isinstance(exc, KeyboardInterrupt)
                run.finish(
                    RunStatus.KILLED if interrupted else RunStatus.FAILED,
                    f"lockstep run failed: {type(exc).__name__}: {exc}",
                )
            raise
    ended = time.time()
    exit_code, status = _status_of(wait_status, seen_signals)
    process.returncode = exit_code  # waited for by os.wait4, which also gives its rusage
    assert gpu is not None
    gpu.stop.set()
    for tee in tees:
        tee.join()
    outcome = _Outcome(
        command=command,
        ended=ended,
        exit_code=exit_code,
        status=status,
        usage=usage,
        gpu=gpu,
        tees=tees,
        seen_signals=seen_signals,
        parent_packages=parent_packages,
        hardware=hardware,
        metric_files=metric_files,
    )
    return _record(job, workspace, run, outcome)


def _die_with_parent() -> Any:
    """On Linux, a function for the child to run before exec: it gets SIGTERM when this
    process dies, even by SIGKILL (no command left logging into a run marked crashed)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def arrange() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return arrange


def _seed_source(job: _Launch) -> str:
    return "given" if job.request.seed is not None else "drawn"


def _record(job: _Launch, workspace: Workspace, run: Any, outcome: _Outcome) -> LaunchResult:
    """Ingest the processes' reports, store inputs and outputs, and end the run (gc waits
    until what refers to the new objects is recorded)."""
    with guard.writing(workspace.objects.root):
        return _record_held(job, workspace, run, outcome)


def _record_held(job: _Launch, workspace: Workspace, run: Any, outcome: _Outcome) -> LaunchResult:
    request, capture_dir, config, started = job.request, job.capture_dir, job.config, job.started
    command, exit_code, status, usage = (
        outcome.command,
        outcome.exit_code,
        outcome.status,
        outcome.usage,
    )
    objects = workspace.objects
    reports = _read_reports(capture_dir)
    main = next((r for r in reports if r.get("main")), reports[0] if reports else None)
    command.update(
        exit_code=exit_code,
        duration=outcome.ended - started,
        python=main is not None,
        peak_rss_bytes=usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
        cpu_user_seconds=usage.ru_utime,
        cpu_system_seconds=usage.ru_stime,
        peak_gpu_memory_mib=outcome.gpu.result(),
        stdout=outcome.tees[0].entry(objects),
        stderr=outcome.tees[1].entry(objects),
        signals=[signal.Signals(s).name for s in outcome.seen_signals],
    )
    if main is None:
        seeds: dict[str, Any] = {
            "note": "the command started no Python process; "
            "only PYTHONHASHSEED and the environment carry the seed"
        }
        determinism: dict[str, Any] = {}
        packages: Any = outcome.parent_packages
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
            packages, packages_source = outcome.parent_packages, "the run's interpreter"
        else:
            packages = Unavailable(reason="the Python process ended before reporting packages")
            packages_source = "none"
    project_root = job.where.project_root  # where the command ran (a rerun: the rebuilt tree)
    environment = snapshot.environment_section(
        project_root=project_root,
        objects=objects,
        # The user's variables (what a rerun restores), not the ones lockstep adds.
        environ={**job.environ, **request.extra_env},
        config=config,
        packages=packages if isinstance(packages, (list, Unavailable)) else None,
        interpreter=interpreter,
    )
    environment["packages_source"] = packages_source

    files: dict[str, int] = {}
    for report in reports:
        for path, kind in report.get("files", {}).items():
            files[path] = files.get(path, 0) | int(kind)
    # Writes by native code (torch.save, HDF5, ...) raise no audit event: find them by time.
    for path in snapshot.written_since(project_root, int(started * 1e9), [workspace.store_dir]):
        files[path] = files.get(path, 0) | WRITE
    ignored = snapshot.ignore_patterns(config)
    files = {p: k for p, k in files.items() if not snapshot.matches_any(p, ignored)}
    files, secret_files = snapshot.without_secret_files(files, config)
    inputs, outputs = snapshot.file_artifacts(project_root, files, objects)
    # Files read, then rewritten (a resumed checkpoint, an appended log): their content when
    # first opened is an input too, kept by the processes before the write.
    rewritten = snapshot.read_then_written(reports, files, objects)
    outside = snapshot.outside_inputs(
        [p for r in reports for p in r.get("outside", [])], workspace.store_dir
    )
    if outside and job.stderr is not None:
        shown = ", ".join(e["path"] for e in outside[:3]) + (", ..." if len(outside) > 3 else "")
        job.stderr.write(
            f"lockstep: {len(outside)} file(s) read from outside the project are recorded by "
            f"path and digest only, not stored ({shown}); a rerun needs them there unchanged "
            "(or move the data into the project, or `lockstep data add` it)\n".encode()
        )
        job.stderr.flush()
    if inputs or outputs:
        workspace.meta.add_artifacts(run.id, [*inputs, *outputs])
        from lockstep.data.api import link_files
        from lockstep.errors import ServerUnreachable
        from lockstep.models.api import link_inputs

        try:
            linked = {a.path: (a.digest, a.kind) for a in (*inputs, *outputs)}
            link_files(workspace, run.id, linked)
            link_inputs(workspace, run.id, [a.digest for a in inputs if a.size > 0])
        except ServerUnreachable:
            # The links name versions only the server knows; the files are recorded with
            # their digests, which lineage follows anyway.
            if job.stderr is not None:
                job.stderr.write(
                    b"lockstep: the run's files could not be linked to dataset and model "
                    b"versions while the server is down; lineage still finds them by content\n"
                )

    printed = _log_printed_metrics(job, workspace, run)
    if printed is not None:
        command["metrics_from_output"] = printed
    from_files = (
        outcome.metric_files.finish([o.path for o in outputs])
        if outcome.metric_files is not None
        else []
    )
    if from_files:
        command["metrics_from_files"] = from_files
    errors = [f"pid {r['pid']}: {e}" for r in reports for e in r.get("errors", [])]
    fingerprints = _read_fingerprints(capture_dir, main)
    workspace.meta.set_sections(
        run.id,
        {
            "command": command,
            "seed": {
                "value": job.seed,
                "source": _seed_source(job),
                "pythonhashseed": job.env.get("PYTHONHASHSEED"),
                "libraries": seeds,
                "script_calls": [c for r in reports for c in r.get("script_seeds", [])][:20],
            },
            **({"read_then_written": rewritten} if rewritten else {}),
            **({"secret_files_skipped": secret_files} if secret_files else {}),
            **({"outside_inputs": outside} if outside else {}),
            "determinism": {"requested": request.deterministic, **determinism},
            "code": _code_section(job),
            "environment": environment,
            "hardware": outcome.hardware,
            **({"capture_errors": errors} if errors else {}),
            **({"tensor_fingerprints": fingerprints} if fingerprints else {}),
        },
    )
    error = None
    for tee in outcome.tees:
        if tee.store_error and job.stderr is not None:
            job.stderr.write(
                f"lockstep: {tee.lost_bytes} bytes of the command's {tee.log_path.stem} could "
                f"not be stored ({tee.store_error}); the rest was, and all was shown\n".encode()
            )
            job.stderr.flush()
    lost = sum(int(r.get("lost_points") or 0) for r in reports)
    if lost:
        # The command succeeded, but its record did not: say so, and fail.
        command["lost_points"] = lost
        workspace.meta.set_sections(run.id, {"command": command})
        if status is RunStatus.FINISHED:
            status, exit_code = RunStatus.FAILED, 1
        message = f"{lost} metric points could not be stored; the run's metrics are incomplete"
        if job.stderr is not None:
            job.stderr.write(f"lockstep: {message}\n".encode())
            job.stderr.flush()
        error = message
    if status is not RunStatus.FINISHED:
        tail = (
            bytes(outcome.tees[1].tail).decode(errors="replace").splitlines()[-_STDERR_TAIL_LINES:]
        )
        error = (error + "\n" if error else "") + f"exit code {exit_code}"
        error += "\n" + "\n".join(tail) if tail else ""
    run.finish(status, error)
    return LaunchResult(run_id=run.id, name=run.name, exit_code=exit_code, status=status)


def _printed_setting(request: LaunchRequest, config: Mapping[str, Any]) -> tuple[bool, str | None]:
    """Whether to read metrics from the output, and with which user pattern."""
    wanted = request.metrics_from_output
    if wanted is None:
        wanted = bool(config.get("metrics_from_output", False))
    return wanted, request.metrics_pattern or config.get("metrics_pattern")


def _printed_pattern(request: LaunchRequest, config: Mapping[str, Any]) -> Any:
    from lockstep.tracking.printed_metrics import compile_pattern

    _, text = _printed_setting(request, config)
    return compile_pattern(text) if text else None


def _log_points(run: Any, points: Any, already: set[str]) -> tuple[int, set[str], set[str]]:
    """Log points into the run, a call per step, skipping keys in already; returns the
    count, the keys logged and the keys skipped."""
    by_step: dict[int, dict[str, float]] = {}
    order: list[int] = []
    skipped: set[str] = set()
    keys: set[str] = set()
    count = 0
    for point in points:
        if point.key in already:
            skipped.add(point.key)
            continue
        if point.step not in by_step:
            by_step[point.step] = {}
            order.append(point.step)
        elif point.key in by_step[point.step]:
            # The same key twice at one step (a train and an eval line): a call of its own.
            run.log(by_step.pop(point.step), step=point.step)
            by_step[point.step] = {}
        by_step[point.step][point.key] = point.value
        keys.add(point.key)
        count += 1
    for step in order:
        if by_step.get(step):
            run.log(by_step[step], step=step)
    return count, keys, skipped


def _watch_metric_files(job: _Launch, workspace: Workspace, run_id: str) -> MetricFiles | None:
    """Read the command's metric logs into its run while it runs (unless turned off)."""
    if not job.request.metrics_from_files:
        return None
    from lockstep.tracking.metric_files import MetricFiles

    def note(text: str) -> None:
        if job.stderr is not None:
            job.stderr.write((text + "\n").encode())
            job.stderr.flush()

    watcher = MetricFiles(
        workspace.meta, run_id, job.where.project_root, job.capture_dir, note=note
    )
    watcher.start()
    return watcher


def _log_printed_metrics(job: _Launch, workspace: Workspace, run: Any) -> dict[str, Any] | None:
    """With --metrics-from-output, the metrics the command printed (stdout and stderr,
    read after it ended) logged into its run; keys the script logged itself are left as
    it logged them. What was read is returned for the command section (a rerun reads
    the same way)."""
    wanted, pattern_text = _printed_setting(job.request, job.config)
    if not wanted:
        return None
    from lockstep.tracking.printed_metrics import read_points

    pattern = _printed_pattern(job.request, job.config)
    _, summaries = workspace.meta.metric_state(run.id)
    lines: list[str] = []
    for name in ("stdout.log", "stderr.log"):
        try:
            text = (job.capture_dir / name).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        lines += text.replace("\r", "\n").split("\n")
    count, keys, skipped = _log_points(run, read_points(lines, pattern), set(summaries))
    if job.stderr is not None:
        note = f"lockstep: {count} metric points read from the output"
        if skipped:
            note += f" (left to the script's own logging: {', '.join(sorted(skipped))})"
        job.stderr.write((note + "\n").encode())
        job.stderr.flush()
    return {
        "pattern": pattern_text,
        "points": count,
        "skipped": sorted(skipped),
        "keys": sorted(keys),
    }


def _code_section(job: _Launch) -> Any:
    """The code the run ran: for a rerun whose rebuilt tree is the original code, the
    original's section (its repository, not the temporary tree)."""
    origin = job.request.origin_code
    if origin is not None and isinstance(job.code, dict):
        # The rebuilt tree also holds the restored inputs and never the original's left-out
        # earlier outputs: neither is code.
        skip = {*job.request.origin_restored, *origin.get("excluded_outputs", [])}
        rebuilt = {**job.code, "files": [f for f in job.code["files"] if f["path"] not in skip]}
        if snapshot.code_identity(rebuilt) == snapshot.code_identity(origin):
            return {**origin, "rebuilt_and_checked": True}
        return {**job.code, "rebuilt_differs_from_recipe": True}
    return as_json(job.code)


def _relative(path: Path, where: _Where) -> str:
    try:
        return path.relative_to(where.project_root).as_posix() or "."
    except ValueError:
        return str(path)
