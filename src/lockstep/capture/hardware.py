"""The machine: OS, kernel, libc, CPU and its numeric features, memory, GPUs and drivers."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Any

from lockstep.capture.result import Unavailable, as_json, gather

# CPU flags that change which kernels numeric libraries pick, hence the bits they produce.
_NUMERIC_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
)


def _cpu() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        info["model"] = platform.processor() or None
        return info
    model = flags = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if model is None and key in ("model name", "Model", "cpu model"):
            model = value.strip()
        elif flags is None and key in ("flags", "Features"):
            flags = set(value.split())
        if model is not None and flags is not None:
            break
    info["model"] = model
    info["numeric_flags"] = [f for f in _NUMERIC_FLAGS if flags and f in flags]
    return info


def _gpus() -> list[dict[str, Any]] | Unavailable:
    """GPUs through nvidia-smi (no Python binding needed)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Unavailable(reason="no NVIDIA driver (nvidia-smi not found)")
    fields = ("name", "memory.total", "driver_version", "compute_cap", "uuid")
    result = subprocess.run(
        [smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if result.returncode != 0:
        return Unavailable(reason=f"nvidia-smi failed: {result.stderr.strip()[:200]}")
    gpus = []
    for line in result.stdout.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        gpu = dict(zip(fields, values, strict=False))
        gpus.append(
            {
                "name": gpu.get("name"),
                "memory_mib": int(float(gpu["memory.total"])) if gpu.get("memory.total") else None,
                "driver": gpu.get("driver_version"),
                "compute_capability": gpu.get("compute_cap"),
                "uuid": gpu.get("uuid"),
            }
        )
    header = subprocess.run([smi], capture_output=True, text=True, check=False, timeout=10)
    cuda = None
    for token in header.stdout.split("CUDA Version:")[1:2]:
        cuda = token.split()[0]
    return [{**g, "cuda_driver_version": cuda} for g in gpus]


def _libc() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")  # instant, unlike platform.libc_ver()
    except (AttributeError, ValueError, OSError):
        name, version = platform.libc_ver()
        return f"{name} {version}".strip() or None


def capture_hardware() -> dict[str, Any]:
    """Every hardware and system fact; each one that fails says why instead."""
    import psutil

    return {
        "os": platform.system(),
        "os_release": platform.release(),
        "kernel": platform.version(),
        "libc": _libc(),
        "hostname": platform.node(),
        "cpu": as_json(gather(_cpu)),
        "memory_bytes": as_json(gather(lambda: psutil.virtual_memory().total)),
        "gpus": as_json(gather(_gpus)),
    }
