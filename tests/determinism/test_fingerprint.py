from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lockstep.determinism.fingerprint import fingerprint, to_hex  # noqa: E402


def hexed(t: object) -> str:
    return to_hex(fingerprint(t))


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int8,
        torch.bool,
    ],
)
def test_equal_bits_equal_fingerprints_and_swaps_are_caught(dtype: object) -> None:
    base = torch.tensor([0, 1, 1, 0, 1], dtype=torch.float32).to(dtype)  # type: ignore[arg-type]
    assert hexed(base) == hexed(base.clone())
    swapped = base[[1, 0, 2, 3, 4]]
    assert hexed(base) != hexed(swapped)


def test_one_bit_changes_the_fingerprint() -> None:
    x = torch.randn(1000)
    y = x.clone()
    y.view(torch.int32)[500] ^= 1
    assert hexed(x) != hexed(y)
    assert hexed(torch.tensor([0.0])) != hexed(torch.tensor([-0.0]))  # bits, not values
