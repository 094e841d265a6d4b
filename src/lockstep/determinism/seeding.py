"""Seed Python, NumPy, PyTorch and TensorFlow, now or when they are first imported.

Standard library only and free of lockstep imports: the child bootstrap of
``lockstep run`` loads this file by path into interpreters that may not have
lockstep installed. Nothing here imports a framework the program has not
imported itself; frameworks imported later are seeded by a post-import hook.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys

# Not `from typing import TYPE_CHECKING`: importing typing costs the bootstrap ~10 ms.
TYPE_CHECKING = False

if TYPE_CHECKING:  # kept out of the bootstrap's import time
    import importlib.machinery
    from types import ModuleType
    from typing import Any

FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")
# cuBLAS needs this before CUDA starts to make its reductions deterministic.
CUBLAS_DETERMINISTIC = ":4096:8"
JAX_NOTE = "explicit keys: JAX has no global generator; derive keys from the run seed"
# More work to do right after a framework is imported and seeded (the bootstrap's
# tensor watch, for one): name -> callables taking the module.
AFTER_IMPORT: dict[str, list[Any]] = {}


def seed_framework(name: str, module: ModuleType, seed: int, deterministic: bool) -> Any:
    """Seed one imported framework; returns the seed it was given (or a note)."""
    if name == "numpy":
        value = seed % 2**32  # the legacy global generator takes 32 bits
        module.random.seed(value)
        return value
    if name == "torch":
        module.manual_seed(seed)  # CPU and every CUDA device
        if deterministic:
            module.use_deterministic_algorithms(True)
            module.backends.cudnn.deterministic = True
            module.backends.cudnn.benchmark = False
        return seed
    if name == "tensorflow":
        module.random.set_seed(seed)
        if deterministic:
            module.config.experimental.enable_op_determinism()
        return seed
    if name == "jax":
        return JAX_NOTE
    raise ValueError(f"unknown framework {name}")


class _Loader:
    """Delegates to the real loader, then runs a callback on the fresh module.

    A plain class: the import system only needs these methods, and importing
    importlib.abc would cost the bootstrap more than everything else it does.
    """

    def __init__(self, loader: Any, callback: Any) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        result: ModuleType | None = self._loader.create_module(spec)
        return result

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class SeedOnImport:
    """A meta path finder that seeds each framework right after its first import."""

    def __init__(self, seed: int, deterministic: bool, results: dict[str, Any]) -> None:
        self.seed = seed
        self.deterministic = deterministic
        self.results = results
        self.pending = {name for name in FRAMEWORKS if name not in sys.modules}

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)  # also keeps the lookup below from coming back here
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec

        def seed(module: ModuleType) -> None:
            try:
                self.results[fullname] = seed_framework(
                    fullname, module, self.seed, self.deterministic
                )
            except Exception as exc:  # never break the program's import
                self.results[fullname] = f"unavailable: {type(exc).__name__}: {exc}"
            for callback in AFTER_IMPORT.get(fullname, []):
                try:
                    callback(module)
                except Exception as exc:
                    self.results[f"{fullname}.watch"] = f"unavailable: {type(exc).__name__}: {exc}"

        spec.loader = _Loader(spec.loader, seed)  # type: ignore[assignment]  # duck-typed
        return spec


def seed_everything(seed: int, deterministic: bool = False) -> dict[str, Any]:
    """Seed ``random``, every imported framework, and frameworks imported later.

    Returns the seed given to each library; the dict fills in as later imports
    happen. Deterministic mode also sets framework flags and CUBLAS_WORKSPACE_CONFIG.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
        os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    random.seed(seed)
    results: dict[str, Any] = {"random": seed}
    for name in FRAMEWORKS:
        module = sys.modules.get(name)
        if module is not None:
            try:
                results[name] = seed_framework(name, module, seed, deterministic)
            except Exception as exc:
                results[name] = f"unavailable: {type(exc).__name__}: {exc}"
    for finder in list(sys.meta_path):
        if isinstance(finder, SeedOnImport) or type(finder).__name__ == "SeedOnImport":
            sys.meta_path.remove(finder)  # the newest seed wins
    sys.meta_path.insert(0, SeedOnImport(seed, deterministic, results))
    return results


# The global seeding calls a program may make itself: (module, attribute path, label).
SCRIPT_SEEDING = {
    "random": (("seed",),),
    "numpy": (("random", "seed"),),
    "torch": (
        ("manual_seed",),
        ("random", "manual_seed"),
        ("cuda", "manual_seed_all"),
        ("cuda", "manual_seed"),
    ),
    "tensorflow": (("random", "set_seed"),),
}
MAX_SCRIPT_SEEDS = 20


def _wrap_seeder(
    owner: Any, attribute: str, label: str, calls: list[Any], skip: Any, root: str
) -> None:
    original = getattr(owner, attribute, None)
    if original is None or getattr(original, "_lockstep_seeder", False):
        return

    def seeder(*args: Any, **kwargs: Any) -> Any:
        try:
            frame = sys._getframe(1)
            filename = frame.f_code.co_filename
            mine = not filename.startswith(skip()) and not filename.startswith("<frozen")
            if mine and len(calls) < MAX_SCRIPT_SEEDS:
                where = filename
                if root and filename.startswith(root.rstrip(os.sep) + os.sep):
                    where = filename[len(root.rstrip(os.sep)) + 1 :]
                value = args[0] if args else kwargs.get("seed", kwargs.get("a"))
                calls.append(
                    {"call": label, "value": repr(value)[:40], "where": f"{where}:{frame.f_lineno}"}
                )
        except Exception:  # recording must never break the program's seeding
            pass
        return original(*args, **kwargs)

    seeder._lockstep_seeder = True  # type: ignore[attr-defined]
    seeder.__wrapped__ = original  # type: ignore[attr-defined]
    seeder.__doc__ = getattr(original, "__doc__", None)
    with contextlib.suppress(AttributeError, TypeError):  # read-only: goes unrecorded
        setattr(owner, attribute, seeder)


def watch_script_seeding(calls: list[Any], skip: Any, root: str) -> None:
    """Record the program's own global seeding calls into calls, now and at later imports.

    Call after lockstep has seeded (its own calls are not the program's; skip() gives the
    directories whose calls are not the program's either: lockstep, stdlib, site-packages).
    """

    def watch(name: str, module: Any) -> None:
        for path in SCRIPT_SEEDING[name]:
            owner = module
            for part in path[:-1]:
                owner = getattr(owner, part, None)
                if owner is None:
                    break
            if owner is not None:
                label = ".".join(
                    ("np" if name == "numpy" else "tf" if name == "tensorflow" else name, *path)
                )
                _wrap_seeder(owner, path[-1], label, calls, skip, root)

    watch("random", sys.modules["random"])
    for name in ("numpy", "torch", "tensorflow"):
        if name in sys.modules:
            watch(name, sys.modules[name])
        else:
            AFTER_IMPORT.setdefault(name, []).append(lambda m, name=name: watch(name, m))


_ENV = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "CUDA_LAUNCH_BLOCKING",
    "NVIDIA_TF32_OVERRIDE",
)


def _safe(getter: Any) -> Any:
    try:
        return getter()
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}: {exc}"


def determinism_state() -> dict[str, Any]:
    """The settings that decide whether results repeat, read from imported frameworks only."""
    state: dict[str, Any] = {"env": {k: os.environ.get(k) for k in _ENV}}
    torch = sys.modules.get("torch")
    if torch is not None:
        cudnn = torch.backends.cudnn
        state["torch"] = {
            "version": _safe(lambda: torch.__version__),
            "deterministic_algorithms": _safe(torch.are_deterministic_algorithms_enabled),
            "deterministic_warn_only": _safe(torch.is_deterministic_algorithms_warn_only_enabled),
            "cudnn_deterministic": _safe(lambda: bool(cudnn.deterministic)),
            "cudnn_benchmark": _safe(lambda: bool(cudnn.benchmark)),
            "cudnn_allow_tf32": _safe(lambda: bool(cudnn.allow_tf32)),
            "cuda_matmul_allow_tf32": _safe(lambda: bool(torch.backends.cuda.matmul.allow_tf32)),
            "float32_matmul_precision": _safe(torch.get_float32_matmul_precision),
            "num_threads": _safe(torch.get_num_threads),
            "num_interop_threads": _safe(torch.get_num_interop_threads),
            "cuda_version": _safe(lambda: torch.version.cuda),
            "cudnn_version": _safe(lambda: cudnn.version() if cudnn.is_available() else None),
            "cuda_available": _safe(torch.cuda.is_available),
        }
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        state["tensorflow"] = {
            "version": _safe(lambda: tensorflow.__version__),
            "op_determinism": _safe(tensorflow.config.experimental.is_op_determinism_enabled),
        }
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        state["numpy"] = {"version": _safe(lambda: numpy.__version__), "blas": _safe(_numpy_blas)}
    if "jax" in sys.modules:
        state["jax"] = {"rng": JAX_NOTE}
    return state


def _numpy_blas() -> Any:
    numpy = sys.modules["numpy"]
    config = numpy.show_config(mode="dicts")
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return {"name": blas.get("name"), "version": blas.get("version")}
