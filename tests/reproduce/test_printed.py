"""Printed output compared line by line: volatile parts masked, numbers within tolerance."""

from __future__ import annotations

from lockstep.reproduce.printed import Masks, compare_text, lines_of

MASKS = Masks.build()


def compare(a: str, b: str, rtol: float = 1e-6, masks: Masks = MASKS) -> str:
    return compare_text(a.encode(), b.encode(), masks, masks, rtol, 0.0).status


def test_numbers_inside_lines_follow_the_tolerance() -> None:
    a, b = "epoch 3\nacc 0.9312\n", "epoch 3\nacc 0.9313\n"
    assert compare(a, b, rtol=1e-3) == "within_tolerance"
    result = compare_text(a.encode(), b.encode(), MASKS, MASKS, 1e-6, 0.0)
    assert result.status == "differs"
    assert result.first_line == 2
    assert result.line_a == "acc 0.9312" and result.line_b == "acc 0.9313"
    assert result.max_abs_diff is not None and abs(result.max_abs_diff - 1e-4) < 1e-9


def test_changed_text_or_line_count_always_differs() -> None:
    assert compare("score 0.5\n", "score 0.5 (30 trees)\n", rtol=1.0) == "differs"
    assert compare("a\nb\n", "a\n", rtol=1.0) == "differs"
    assert compare("loss nan\n", "loss nan\n") == "identical"
    assert compare("loss nan\n", "loss 0.1\n", rtol=1.0) == "differs"
    assert compare("x 1\n", "x 2\n", rtol=0.1) == "differs"


def test_volatile_parts_are_masked() -> None:
    a = (
        "2026-11-30 10:00:01,123 INFO started\n"
        "epoch 1 took 12.5s\n"
        "<Model object at 0x7f3a2b1c4d50>\n"
        " 50%|#####     | 5/10 [00:01<00:01, 4.51it/s]"
        "\r100%|##########| 10/10 [00:02<00:00, 4.70it/s]\n"
        "saved /tmp/lockstep-rerun-abc123/work/model.pt\n"
        "acc 0.91\n"
    )
    b = (
        "2026-12-01 23:59:59,999 INFO started\n"
        "epoch 1 took 9.1s\n"
        "<Model object at 0x55d1e2f3a4b0>\n"
        "100%|##########| 10/10 [00:03<00:00, 3.10it/s]\n"
        "saved /tmp/lockstep-rerun-zzz999/work/model.pt\n"
        "acc 0.91\n"
    )
    result = compare_text(a.encode(), b.encode(), MASKS, MASKS, 1e-6, 0.0)
    assert result.status == "identical" and result.masked
    # The masks never hide a result: the accuracy still counts.
    assert compare(a, b.replace("acc 0.91", "acc 0.95")) == "differs"


def test_run_names_and_user_patterns_are_masked() -> None:
    a = Masks.build(["seed=\\d+"], [("01ABC", "<run-id>"), ("/home/u/proj", "<project>")])
    b = Masks.build(["seed=\\d+"], [("01XYZ", "<run-id>"), ("/tmp/x/work", "<project>")])
    left = b"run 01ABC seed=17 at /home/u/proj/out\n"
    right = b"run 01XYZ seed=99 at /tmp/x/work/out\n"
    assert compare_text(left, right, a, b, 1e-6, 0.0).status == "identical"
    assert compare_text(left, right, MASKS, MASKS, 1e-6, 0.0).status == "differs"


def test_carriage_returns_keep_what_the_terminal_shows() -> None:
    assert lines_of(b"step 1\rstep 2\rstep 3\nend\n\n") == ["step 3", "end"]
