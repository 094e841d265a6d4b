"""Lockstep's bootstrap for Python processes started by ``lockstep run``.

``lockstep run`` puts this directory first on PYTHONPATH, so every Python
process of the run imports this module before the program's own code. It
seeds ``random`` (and each framework when it is imported), turns on
determinism flags when asked, records the files the process opens, and at
exit writes a JSON report for the parent to ingest. It uses the standard
library only and loads its helpers from the lockstep source tree by path, so
it works in interpreters that do not have lockstep installed. It never raises
into the program; if something fails, the report says what.
"""

import contextlib
import os
import sys

# Not `from typing import TYPE_CHECKING`: importing typing costs the bootstrap ~10 ms.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any


def _lockstep_bootstrap() -> None:
    import atexit
    import importlib.util
    import signal
    import time

    capture_dir = os.environ.get("LOCKSTEP_CAPTURE_DIR")
    if not capture_dir:
        return
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def load(relative: str, name: str):  # type: ignore[no-untyped-def]
        spec = importlib.util.spec_from_file_location(name, os.path.join(package, relative))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module

    errors: list[str] = []
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "argv": list(sys.argv),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "version": sys.version,
        "started": time.time(),
        "errors": errors,
    }
    try:
        # The first Python process of the run is the main one: it reports the environment.
        fd = os.open(os.path.join(capture_dir, "main.claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
        report["main"] = True
    except OSError:
        report["main"] = False

    seeds = {}
    seeding = None
    try:
        seeding = load("determinism/seeding.py", "_lockstep_seeding")
        seed = int(os.environ["LOCKSTEP_SEED"])
        deterministic = os.environ.get("LOCKSTEP_DETERMINISTIC") == "1"
        seeds = seeding.seed_everything(seed, deterministic)
    except Exception as exc:
        errors.append(f"seeding: {type(exc).__name__}: {exc}")
    report["seeds"] = seeds

    watch_steps = os.environ.get("LOCKSTEP_WATCH_STEPS")
    if watch_steps and seeding is not None:
        # `lockstep audit`: fingerprint tensors once torch is imported (lockstep must be
        # importable here; the report says so if it is not).
        def start_watch(_torch: object) -> None:
            from lockstep.determinism.watch import install_global

            install_global(
                int(watch_steps),
                int(os.environ.get("LOCKSTEP_WATCH_EVERY", "1")),
                os.path.join(capture_dir, f"fingerprints-{os.getpid()}.json"),
            )

        seeding.AFTER_IMPORT.setdefault("torch", []).append(start_watch)

    if os.environ.get("LOCKSTEP_MLFLOW") == "1" and not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow's client writes into this run through lockstep's plugin, when both are
        # installed where this interpreter looks (else MLflow keeps its own default).
        try:
            import importlib.util

            spec = importlib.util.find_spec("mlflow")
            version = _mlflow_major(spec)
            if version is not None and version < 3:
                # lockstep's plugin speaks MLflow 3's client; an older one keeps its default.
                report["mlflow"] = f"left alone: MLflow {version}.x"
            elif spec is not None and importlib.util.find_spec("lockstep"):
                os.environ["MLFLOW_TRACKING_URI"] = "lockstep:"
                # The registry MLflow would derive from it, said outright: unset, each
                # MLflow call looks for a Spark session first (an import attempt per call).
                os.environ.setdefault("MLFLOW_REGISTRY_URI", "lockstep:")
                # MLflow would print a link to its own UI naming this run, which differs
                # between a run and its rerun (and opens nothing).
                os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
                report["mlflow"] = "lockstep:"
        except Exception as exc:
            errors.append(f"mlflow: {type(exc).__name__}: {exc}")

    recorder = None
    try:
        iohook = load("capture/iohook.py", "_lockstep_iohook")
        recorder = iohook.install(
            os.environ.get("LOCKSTEP_PROJECT_ROOT"),
            os.path.join(capture_dir, f"preimages-{os.getpid()}"),
            # metric logs named as they are created: read into the run while it runs
            os.path.join(capture_dir, "metric-files.txt"),
        )
    except Exception as exc:
        errors.append(f"file recording: {type(exc).__name__}: {exc}")

    script_seeds: list[dict[str, Any]] = []
    if seeding is not None:
        # Seeds the program sets itself, with where it set them (lockstep's own calls and
        # libraries' internal ones are not the program's).
        # Found at the first seeding call, not at every interpreter start: the stdlib and
        # site-packages paths cost the sysconfig import.
        skipped: list[tuple[str, ...]] = []

        def skip():  # type: ignore[no-untyped-def]
            if not skipped:
                roots = [package] + (iohook.default_ignores() if recorder is not None else [])
                skipped.append(tuple(p.rstrip(os.sep) + os.sep for p in roots))
            return skipped[0]

        try:
            seeding.watch_script_seeding(
                script_seeds, skip, os.environ.get("LOCKSTEP_PROJECT_ROOT", "")
            )
        except Exception as exc:
            errors.append(f"seed recording: {type(exc).__name__}: {exc}")
    report["script_seeds"] = script_seeds

    if recorder is not None and seeding is not None:
        # torch.save writes from native code, past the audit hook: keep a checkpoint the
        # program read (a resumed run) before torch overwrites it.
        def watch_torch_save(torch):  # type: ignore[no-untyped-def]
            original = torch.save

            def save(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
                if isinstance(f, (str, os.PathLike)):
                    with contextlib.suppress(Exception):
                        recorder.before_write(os.fspath(f))
                return original(obj, f, *args, **kwargs)

            save.__wrapped__ = original  # type: ignore[attr-defined]
            save.__doc__ = original.__doc__
            torch.save = save

        seeding.AFTER_IMPORT.setdefault("torch", []).append(watch_torch_save)

    def finish() -> None:
        try:
            import json

            if recorder is not None:
                recorder.enabled = False
                ignore = iohook.default_ignores() + os.environ.get(
                    "LOCKSTEP_CAPTURE_IGNORE", ""
                ).split(os.pathsep)
                root = os.environ["LOCKSTEP_PROJECT_ROOT"]
                report["files"] = recorder.files(root, ignore)
                report["preimages"] = recorder.saved_preimages(root)
                report["outside"] = recorder.outside(
                    root, [*ignore, capture_dir], os.path.expanduser("~")
                )
            if seeding is not None:
                report["determinism"] = seeding.determinism_state()
            if report["main"] and os.environ.get("LOCKSTEP_PARENT_PREFIX") != sys.prefix:
                # Another environment than lockstep's own: only this process can list it.
                packages = load("capture/packages.py", "_lockstep_packages")
                report["packages"] = packages.installed_distributions()
            writer = sys.modules.get("lockstep.tracking.writer")
            report["lost_points"] = getattr(writer, "LOST_POINTS", 0) if writer else 0
            report["ended"] = time.time()
            path = os.path.join(capture_dir, f"process-{os.getpid()}.json")
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(report, handle, default=str)
            os.replace(tmp, path)
        except Exception as exc:  # the program's exit must not fail because of lockstep
            sys.stderr.write(f"lockstep: could not write the run report: {exc}\n")

    atexit.register(finish)

    # SIGTERM would end the process without atexit; turn it into SystemExit instead,
    # unless the program installs its own handler later (which then wins).
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def on_sigterm(signum, frame):  # type: ignore[no-untyped-def]
            raise SystemExit(128 + signum)

        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, on_sigterm)


def _mlflow_major(spec: "Any") -> "int | None":
    """The major version of the MLflow package spec points at, read from its version.py
    (importing MLflow takes a second; reading the file, microseconds); None if unknown."""
    try:
        folder = next(iter(spec.submodule_search_locations or []))
        with open(os.path.join(folder, "version.py"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VERSION"):
                    return int(line.split("=", 1)[1].strip().strip("\"'").split(".")[0])
    except Exception:
        return None
    return None


def _chain_to_next_sitecustomize() -> None:
    """Run the sitecustomize this one shadows (a distribution's or the user's), if any."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


try:
    _lockstep_bootstrap()
except Exception as _exc:  # pragma: no cover - defensive: never break the program
    sys.stderr.write(f"lockstep: bootstrap failed: {_exc}\n")
try:
    _chain_to_next_sitecustomize()
except Exception as _exc:  # pragma: no cover
    sys.stderr.write(f"lockstep: the next sitecustomize failed: {_exc}\n")
