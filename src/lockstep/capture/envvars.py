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
    # TensorFlow's own variables (not every TF_*: Terraform's TF_CLI_CONFIG_FILE, TF_VAR_*).
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_*",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_NUM_*",
    "TF_GPU_*",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_XLA_FLAGS",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_USE_LEGACY_KERAS",
    "TF_ENABLE_AUTO_MIXED_PRECISION",
    "TF_INTRA_OP_PARALLELISM_THREADS",
    "TF_INTER_OP_PARALLELISM_THREADS",
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
    from lockstep.capture.secrets import redact_url

    patterns = (*ALLOWLIST, *extra)
    return {
        name: redact_url(value)  # a URL in a value may carry credentials
        for name, value in sorted(environ.items())
        if not is_secret(name) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    }
