from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from lockstep.determinism.fingerprint import device_fingerprint, fingerprint, to_hex  # noqa: E402

# The host scheme (XXH3 of the bytes) and the device scheme (position-weighted
# integer sum), the latter run here on CPU tensors.
SCHEMES: list[Callable[[Any], Any]] = [fingerprint, device_fingerprint]


@pytest.mark.parametrize("scheme", SCHEMES, ids=["host", "device"])
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
def test_equal_bits_equal_fingerprints_and_swaps_are_caught(
    dtype: object, scheme: Callable[[Any], Any]
) -> None:
    base = torch.tensor([0, 1, 1, 0, 1], dtype=torch.float32).to(dtype)  # type: ignore[arg-type]
    assert to_hex(scheme(base)) == to_hex(scheme(base.clone()))
    swapped = base[[1, 0, 2, 3, 4]]
    assert to_hex(scheme(base)) != to_hex(scheme(swapped))


@pytest.mark.parametrize("scheme", SCHEMES, ids=["host", "device"])
def test_one_bit_changes_the_fingerprint(scheme: Callable[[Any], Any]) -> None:
    x = torch.randn(1000)
    y = x.clone()
    y.view(torch.int32)[500] ^= 1
    assert to_hex(scheme(x)) != to_hex(scheme(y))
    zero, negative_zero = torch.tensor([0.0]), torch.tensor([-0.0])
    assert to_hex(scheme(zero)) != to_hex(scheme(negative_zero))  # bits, not values


def test_host_tensors_are_hashed_in_memory_order_whatever_their_layout() -> None:
    x = torch.randn(64, 33, requires_grad=True)
    assert isinstance(fingerprint(x), int)  # no device round trip on the host
    transposed = x.detach().t()
    assert fingerprint(transposed) == fingerprint(transposed.contiguous())
    assert fingerprint(transposed) != fingerprint(x)
    assert fingerprint(x[5:9]) == fingerprint(x[5:9].clone())  # a view at an offset
    assert fingerprint(torch.empty(0)) == fingerprint(torch.empty(0, 4))
    assert to_hex(fingerprint(torch.tensor(1.5))) == to_hex(fingerprint(torch.tensor([1.5])))
