"""Environment variables that change results: an allowlist, minus anything that looks secret."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

ALLOWLIST = (
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "PYTHONOPTIMIZE",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUDA_LAUNCH_BLOCKING",
    "CUBLAS_*",
    "CUDNN_*",
    "NCCL_*",
    "NVIDIA_TF32_OVERRIDE",
    "OMP_*",
    "MKL_*",
    "OPENBLAS_*",
    "BLIS_*",
    "VECLIB_*",
    "NUMEXPR_*",
    "KMP_*",
    "GOTO_NUM_THREADS",
    "TF_*",
    "XLA_FLAGS",
    "JAX_*",
    "TORCH_*",
    "PYTORCH_*",
    "HF_*",
    "TRANSFORMERS_*",
    "TOKENIZERS_PARALLELISM",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "VIRTUAL_ENV",
    "LANG",
    "LC_ALL",
    "TZ",
)
# Whatever the configuration says, a name like these is never stored.
_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|PRIVATE|SESSION", re.I)


def is_secret(name: str) -> bool:
    return bool(_SECRET.search(name))


def capture_variables(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The allowlisted (plus extra) variables that are set, secret-looking names dropped."""
    patterns = (*ALLOWLIST, *extra)
    return {
        name: value
        for name, value in sorted(environ.items())
        if not is_secret(name) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    }
