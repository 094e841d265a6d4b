"""Metrics read from printed output: the default pattern against the output formats of
well-known training scripts, lines that must never be taken as metrics, user patterns."""

from __future__ import annotations

import re

import pytest

from lockstep.errors import UsageError
from lockstep.tracking.printed_metrics import Point, compile_pattern, read_points

# Lines as the scripts print them (values shortened).
SAMPLES = {
    "nanoGPT train.py": (
        [
            "step 0: train loss 10.9876, val loss 10.9901",
            "iter 0: loss 10.9912, time 3456.78ms, mfu -100.00%",
            "iter 10: loss 9.8765, time 456.12ms, mfu 12.34%",
        ],
        [
            ("train_loss", 0, 10.9876),
            ("val_loss", 0, 10.9901),
            ("loss", 0, 10.9912),
            ("loss", 10, 9.8765),
        ],
    ),
    "pytorch/examples mnist": (
        [
            "Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.305400",
            "Train Epoch: 1 [640/60000 (1%)]\tLoss: 1.359780",
            "Test set: Average loss: 0.0521, Accuracy: 9835/10000 (98%)",
        ],
        [("Loss", 1, 2.3054), ("Loss", 1, 1.35978), ("Average_loss", 0, 0.0521)],
    ),
    "Keras fit": (
        [
            "Epoch 1/2",
            "1875/1875 [=========================] - 3s 1ms/step - loss: 0.2950 - accuracy: 0.9146",
            "Epoch 2/2",
            "1875/1875 [=========================] - 2s 1ms/step - loss: 0.1420 - accuracy: 0.9581",
        ],
        [("loss", 0, 0.295), ("accuracy", 0, 0.9146), ("loss", 1, 0.142), ("accuracy", 1, 0.9581)],
    ),
    "Transformers Trainer": (
        [
            "{'loss': 0.6931, 'grad_norm': 1.25, 'learning_rate': 5e-05, 'epoch': 0.5}",
            "{'eval_loss': 0.6012, 'eval_runtime': 0.51, 'epoch': 1.0}",
            "{'loss': 0.5123, 'grad_norm': 1.1, 'learning_rate': 2.5e-05, 'epoch': 1.5}",
        ],
        [
            ("loss", 0, 0.6931),
            ("grad_norm", 0, 1.25),
            ("learning_rate", 0, 5e-05),
            ("eval_loss", 0, 0.6012),
            ("eval_runtime", 0, 0.51),
            ("loss", 1, 0.5123),
            ("grad_norm", 1, 1.1),
            ("learning_rate", 1, 2.5e-05),
        ],
    ),
    "key=value logs": (
        ["loss=0.5 acc=0.9", "loss=0.4 acc=0.92"],
        [("loss", 0, 0.5), ("acc", 0, 0.9), ("loss", 1, 0.4), ("acc", 1, 0.92)],
    ),
    "fairseq-style pipes": (
        ["| epoch 003 | loss 4.12 | ppl 17.39 | wps 12345"],
        [("loss", 3, 4.12), ("ppl", 3, 17.39), ("wps", 3, 12345.0)],
    ),
}

NEVER = [
    " 45%|####5     | 45/100 [00:01<00:02, 30.12it/s]",
    "Epoch 3:  12%|#2        | 12/100 [00:03<00:22,  3.98it/s, loss=0.123, v_num=0]"[:45],
    "2026-12-04 10:00:00,123 INFO training started",
    "Python 3.11.7",
    "torch 2.13.0+cpu",
    "lockstep 0.1.0",
    "using device cuda:0",
    "Serving on http://localhost:5000",
    "Downloading: 100%|##########| 1.2G/1.2G [00:10<00:00, 118MB/s]",
    "Elapsed 12.5 s",
    "Started server process [4242]",
]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_well_known_output_formats(name: str) -> None:
    lines, expected = SAMPLES[name]
    found = [(p.key, p.step, pytest.approx(p.value)) for p in read_points(lines)]
    assert found == expected


@pytest.mark.parametrize("line", NEVER)
def test_lines_that_are_not_metrics(line: str) -> None:
    assert list(read_points([line])) == []


def test_a_user_pattern_with_key_and_value_groups() -> None:
    pattern = compile_pattern(r"after (?P<step>\d+) batches, (?P<key>\w+) is (?P<value>[-0-9.e]+)")
    found = list(read_points(["after 20 batches, loss is 0.75", "nothing here"], pattern))
    assert found == [Point(key="loss", step=20, value=0.75)]


def test_a_user_pattern_with_one_group_per_metric() -> None:
    pattern = compile_pattern(r"L=(?P<loss>[0-9.]+) A=(?P<acc>[0-9.]+)")
    found = list(read_points(["L=0.5 A=0.8", "L=0.4 A=0.9"], pattern))
    assert [(p.key, p.step, p.value) for p in found] == [
        ("loss", 0, 0.5),
        ("acc", 0, 0.8),
        ("loss", 1, 0.4),
        ("acc", 1, 0.9),
    ]


@pytest.mark.parametrize("text", ["(", r"step (\d+)", r"(?P<step>\d+)"])
def test_a_bad_user_pattern_says_what_to_fix(text: str) -> None:
    with pytest.raises(UsageError, match=re.escape("[capture] metrics_pattern")):
        compile_pattern(text)
