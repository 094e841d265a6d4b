from __future__ import annotations

from lockstep.reproduce.recipe import FACTORS, Recipe


def recipe(**overrides: object) -> Recipe:
    base: dict[str, object] = {
        "code": {"kind": "git", "root": "/r", "commit": "c1", "diff": None, "files": []},
        "inputs": (("data/a.csv", "d1"),),
        "argv": ("python", "train.py"),
        "cwd": ".",
        "seed": 1,
    }
    base.update(overrides)
    return Recipe(**base)  # type: ignore[arg-type]


def test_factors_and_swaps() -> None:
    a = recipe()
    b = recipe(inputs=(("data/a.csv", "d2"),), seed=2, argv=("python", "train.py", "--lr", "2"))
    assert a.differing(b) == ["data", "params", "seed"]
    hybrid = a.with_factor("data", b)
    assert hybrid.inputs == b.inputs and hybrid.seed == a.seed
    # Swapping one factor closes exactly that difference, and makes another recipe.
    for factor in a.differing(b):
        swapped = a.with_factor(factor, b)
        assert swapped.differing(b) == [f for f in a.differing(b) if f != factor]
        assert swapped.digest() not in (a.digest(), b.digest())
    assert set(FACTORS) - set(a.differing(b)) == {"code", "environment"}


def test_digest_names_what_runs_not_where_it_was_recorded() -> None:
    a = recipe()
    moved = recipe(
        code={"kind": "git", "root": "/elsewhere", "commit": "c1", "diff": None, "files": []}
    )
    assert a.digest() == moved.digest()
    assert a.digest() != recipe(seed=2).digest()
