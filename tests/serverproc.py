"""A real ``lockstep server`` in a subprocess on a free port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The default project's runs, as requests name them.
RUNS = "/api/v1/projects/default/runs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(
    cwd: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[str]:
    """Start `lockstep server ARGS` in cwd; yields its URL once /health answers."""
    with serving(cwd, *args, env=env, port=port) as (url, _process):
        yield url


@contextmanager
def serving(
    cwd: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Like served, also yielding the server's process (to kill it)."""
    import httpx

    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    full_env.update(env or {})
    # The access log goes to a file: a pipe nobody reads would fill and stall the server.
    log = (cwd / f"server-{port}.log").open("a+")
    process = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "server", "--port", str(port), *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the server exited: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer within 30 s")
            time.sleep(0.05)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
