"""The spool on disk: order kept across a failed replay, a warning past its size."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from lockstep.errors import ServerUnreachable
from lockstep.remote.spool import Spool

RUN = "0" * 26


def test_a_replay_that_fails_keeps_the_rest_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for n in range(10):
        spool.append(RUN, "log_params", {"n": n})
    sent: list[int] = []

    def flaky(_op: str, body: dict[str, Any]) -> None:
        if body["n"] == 4:
            raise ServerUnreachable("down")
        sent.append(body["n"])

    with pytest.raises(ServerUnreachable):
        spool.replay(RUN, flaky)
    assert sent == [0, 1, 2, 3]
    assert spool.pending(RUN)
    assert spool.replay(RUN, lambda _o, b: sent.append(b["n"])) is True
    assert sent == list(range(10))  # 4 onwards, once each, in order
    assert not spool.pending(RUN) and spool.runs() == []


def test_past_its_size_the_spool_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", warn_bytes=2000)
    with caplog.at_level(logging.WARNING, logger="lockstep"):
        for n in range(100):
            spool.append(RUN, "log_params", {"n": n, "pad": "x" * 50})
    warnings = [r for r in caplog.records if "spool_warn_mb" in r.getMessage()]
    assert len(warnings) == 1 and spool.size() > 2000


def test_the_spool_warning_size_is_configurable(tmp_path: Path) -> None:
    from tests.tracking.test_launcher import lockstep

    (tmp_path / ".lockstep").mkdir()
    (tmp_path / ".lockstep" / "config.toml").write_text('[server]\nspool_warn_mb = "big"\n')
    refused = lockstep(tmp_path, "runs")
    assert refused.returncode == 2 and "spool_warn_mb" in refused.stderr
