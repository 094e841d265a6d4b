from __future__ import annotations

from importlib import metadata
from pathlib import Path

from lockstep.capture.packages import installed_distributions, normalise


def test_matches_importlib_metadata() -> None:
    ours = {(p["name"], p["version"]) for p in installed_distributions()}
    theirs = {(normalise(d.metadata["Name"]), d.version) for d in metadata.distributions()}
    assert ours == theirs


def test_editable_install_is_flagged() -> None:
    lockstep = next(p for p in installed_distributions() if p["name"] == "lockstep")
    assert lockstep.get("editable") is True
    assert lockstep["url"].startswith("file://")


def test_vcs_origin_is_read_from_direct_url(tmp_path: Path) -> None:
    info = tmp_path / "mylib-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: mylib\nVersion: 1.2.3\n")
    (info / "direct_url.json").write_text(
        '{"url": "https://example.com/mylib.git", '
        '"vcs_info": {"vcs": "git", "commit_id": "abc123"}}'
    )
    (tmp_path / "Odd_Name.egg-info").mkdir()
    (tmp_path / "Odd_Name.egg-info" / "PKG-INFO").write_text("Name: Odd_Name\nVersion: 0.1\n")
    found = {p["name"]: p for p in installed_distributions([str(tmp_path)])}
    assert found["mylib"] == {
        "name": "mylib",
        "version": "1.2.3",
        "url": "https://example.com/mylib.git",
        "vcs": "git",
        "commit": "abc123",
    }
    assert found["odd-name"]["version"] == "0.1"
