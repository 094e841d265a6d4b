"""Planted secrets never reach the store or a remote: the whole store and everything `push`
sends are searched for each one."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from lockstep.capture.secrets import is_secret_file, redact_argv, redact_url
from tests.gitrepo import git, make_repo
from tests.tracking.test_launcher import lockstep, show

SECRETS = {
    "argv option": "sk-plantedOptionValue1234567890",
    "argv equals": "hunter2-planted-password",
    "argv name=value": "planted-token-value-42",
    "git remote": "planted-remote-password",
    "dotenv file": "PLANTED_DOTENV_SECRET",
    "credentials file": "planted-credentials-json",
    "private key": "PLANTED-PRIVATE-KEY-MATERIAL",
    "netrc": "planted-netrc-password",
    "terraform variable": "planted-tf-var-value",
    "own variable": "planted-own-variable-token",
    "url in a variable": "planted-url-password",
}

TRAIN = textwrap.dedent("""
    import sys
    settings = open(".env").read()  # python-dotenv style: the secret file is read
    print("loaded", len(settings), "bytes of settings;", "args", len(sys.argv))
    open("model.txt", "w").write("weights")
""")


def test_no_planted_secret_reaches_the_store_or_the_remote(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "project", {"train.py": TRAIN, ".gitignore": "model.txt\n"})
    git(root, "remote", "add", "origin", f"https://alice:{SECRETS['git remote']}@git.example/r.git")
    (root / ".env").write_text(f"API_KEY={SECRETS['dotenv file']}\n")
    (root / "credentials.json").write_text(json.dumps({"secret": SECRETS["credentials file"]}))
    (root / "id_rsa").write_text(f"-----BEGIN-----\n{SECRETS['private key']}\n")
    (root / ".netrc").write_text(f"machine x login a password {SECRETS['netrc']}\n")
    (root / "notes.txt").write_text("an ordinary untracked file\n")
    assert lockstep(root, "init").returncode == 0
    (root / ".lockstep" / "config.toml").write_text('[capture]\nenv = ["MY_*"]\n')
    env = {
        "TF_VAR_db_password": SECRETS["terraform variable"],
        "TF_VAR_region": "eu-west-1",
        "MY_API_TOKEN": SECRETS["own variable"],
        "MY_SETTING": "kept",
        "HF_ENDPOINT": f"https://bob:{SECRETS['url in a variable']}@hub.example",
    }
    ran = lockstep(
        root,
        "run",
        "--name",
        "job",
        "--",
        sys.executable,
        "train.py",
        "--api-key",
        SECRETS["argv option"],
        f"--password={SECRETS['argv equals']}",
        f"token={SECRETS['argv name=value']}",
        "--max_tokens",
        "100",
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    record = show(root, "job")
    argv = record["command"]["argv"]
    assert argv[-6:] == [
        "--api-key",
        "<redacted>",
        "--password=<redacted>",
        "token=<redacted>",
        "--max_tokens",
        "100",
    ]
    assert [r["name"] for r in record["command"]["redacted"]] == ["api-key", "password", "token"]
    assert record["code"]["remote"] == "https://<redacted>@git.example/r.git"
    assert [f["path"] for f in record["code"]["files"]] == ["notes.txt"]
    assert record["secret_files_skipped"] == [".env"]
    assert record["inputs"] == []
    variables = record["environment"]["variables"]
    assert variables["MY_SETTING"] == "kept" and "MY_API_TOKEN" not in variables
    assert not any(name.startswith("TF_VAR") for name in variables)
    assert variables["HF_ENDPOINT"] == "https://<redacted>@hub.example"

    remote = tmp_path / "remote"
    assert lockstep(root, "remote", "add", "team", str(remote)).returncode == 0
    assert lockstep(root, "push").returncode == 0
    stored = [p for p in (root / ".lockstep").rglob("*") if p.is_file()]
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    assert stored and pushed
    for place in (*stored, *pushed):
        data = place.read_bytes()
        for what, secret in SECRETS.items():
            assert secret.encode() not in data, f"{what} secret found in {place}"

    # A rerun takes the redacted values from LOCKSTEP_SECRET_<NAME>, or says so.
    refused = lockstep(root, "rerun", "job", env=env)
    assert refused.returncode == 2
    assert "LOCKSTEP_SECRET_API_KEY" in refused.stderr
    given = {
        **env,
        "LOCKSTEP_SECRET_API_KEY": SECRETS["argv option"],
        "LOCKSTEP_SECRET_PASSWORD": SECRETS["argv equals"],
        "LOCKSTEP_SECRET_TOKEN": SECRETS["argv name=value"],
    }
    rerun = lockstep(root, "rerun", "job", env=given)
    assert rerun.returncode == 0, rerun.stderr
    for place in (p for p in (root / ".lockstep").rglob("*") if p.is_file()):
        data = place.read_bytes()
        assert SECRETS["argv option"].encode() not in data


def test_redaction_leaves_ordinary_arguments_alone() -> None:
    argv = [
        "python",
        "t.py",
        "--tokenizer",
        "bert",
        "--max_new_tokens",
        "64",
        "--author",
        "Ada",
        "--key",
        "loss",
        "--lr=0.1",
        "--hf_token",
        "hf_abcdefghijklmnopqrstuvwx",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
    ]
    redacted, found = redact_argv(argv)
    assert redacted[:12] == argv[:12]
    assert redacted[12:] == ["<redacted>", "<redacted>"]
    assert [r.index for r in found] == [12, 13]
    assert redact_url("pip install git+https://tok:x@github.com/a/b") == (
        "pip install git+https://<redacted>@github.com/a/b"
    )
    assert redact_url("https://github.com/a/b") == "https://github.com/a/b"
    for name in (".env", "config/.env.production", "keys/server.pem", "id_ed25519", ".netrc"):
        assert is_secret_file(name)
    assert not is_secret_file("data/train.csv") and not is_secret_file("env.py")
    assert not is_secret_file(".env", allowed=[".env"])
