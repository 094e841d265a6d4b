from __future__ import annotations

from lockstep.capture.envvars import capture_variables, is_secret


def test_allowlisted_variables_only() -> None:
    environ = {
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "4",
        "HOME": "/root",
        "XLA_FLAGS": "--x",
        "EDITOR": "vim",
    }
    assert capture_variables(environ) == {
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "4",
        "XLA_FLAGS": "--x",
    }


def test_user_configured_names_and_patterns() -> None:
    environ = {"MY_SETTING": "a", "DATA_ROOT": "/d", "OTHER": "x"}
    assert capture_variables(environ, ["MY_SETTING", "DATA_*"]) == {
        "DATA_ROOT": "/d",
        "MY_SETTING": "a",
    }


def test_secret_names_are_never_stored_whatever_the_configuration() -> None:
    environ = {
        "HF_TOKEN": "hf_x",
        "TF_API_KEY": "k",
        "WANDB_API_KEY": "w",
        "MY_PASSWORD": "p",
        "AWS_SECRET_ACCESS_KEY": "s",
        "NCCL_AUTH": "a",
        "HF_HOME": "/h",
    }
    assert capture_variables(environ, ["*"]) == {"HF_HOME": "/h"}
    assert is_secret("db_credentials") and not is_secret("OMP_NUM_THREADS")
