"""The tensor watch in-process: record order across steps, several optimizers, odd tensors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

from lockstep.determinism.divergence import first_divergence  # noqa: E402
from lockstep.determinism.watch import Watcher, attach  # noqa: E402


class NoisyGrad(torch.autograd.Function):
    """Identity forward; backward adds noise from a generator, when one is given."""

    @staticmethod
    def forward(ctx, x, gen):  # type: ignore[no-untyped-def]
        ctx.gen = gen
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        if ctx.gen is None:
            return grad, None
        return grad + 1e-3 * torch.randn(grad.shape, generator=ctx.gen), None


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(6, 12)
        self.second = torch.nn.Linear(12, 1)
        self.noise_from_step: int | None = None
        self.gen: torch.Generator | None = None
        self.step = 0

    def forward(self, x):  # type: ignore[no-untyped-def]
        gen = (
            self.gen
            if self.noise_from_step is not None and self.step >= self.noise_from_step
            else None
        )
        return self.second(NoisyGrad.apply(self.first(x), gen))


def train(steps: int, watch_steps: int, prepare: Callable[[Block], None] = lambda m: None) -> dict:  # type: ignore[type-arg]
    torch.manual_seed(3)
    model = Block()
    prepare(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    watcher = attach(Watcher(steps=watch_steps, model=model))
    try:
        for step in range(steps):
            model.step = step
            opt.zero_grad()
            model(torch.randn(8, 6)).pow(2).mean().backward()
            opt.step()
    finally:
        watcher.stop()
    return watcher.to_json()


def backward_names(step_records: list[list[str]]) -> list[str]:
    return [name for phase, name, _ in step_records if phase == "backward"]


def test_later_steps_record_gradients_in_the_order_backward_produced_them() -> None:
    section = train(steps=4, watch_steps=4)
    first = backward_names(section["steps"][0])
    # Backward reaches the last layer first.
    assert [name.rsplit(".", 2)[0] for name in first] == ["Block.second"] * 2 + ["Block.first"] * 2
    for later in section["steps"][1:]:
        assert backward_names(later) == first
    assert [r[:2] for r in section["steps"][1]] == [r[:2] for r in section["steps"][2]]


def test_a_gradient_that_diverges_after_the_first_step_is_named_as_backward() -> None:
    def noisy(seed: int) -> Callable[[Block], None]:
        def prepare(model: Block) -> None:
            model.noise_from_step = 2
            model.gen = torch.Generator().manual_seed(seed)

        return prepare

    a, b = train(4, 4, noisy(1)), train(4, 4, noisy(2))
    divergence = first_divergence(a, b)
    assert divergence is not None
    assert (divergence.step, divergence.phase) == (2, "backward")
    assert divergence.name.startswith("Block.first.")  # the noise enters below `second`
    assert first_divergence(train(4, 4, noisy(1)), train(4, 4, noisy(1))) is None


def test_each_optimizer_step_records_only_its_own_parameters() -> None:
    torch.manual_seed(0)
    gen_net, disc_net = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
    opt_g = torch.optim.SGD(gen_net.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(disc_net.parameters(), lr=0.1)
    watcher = attach(Watcher(steps=6))
    for _ in range(3):
        opt_d.zero_grad()
        disc_net(gen_net(torch.randn(4, 3)).detach()).mean().backward()
        opt_d.step()
        opt_g.zero_grad()
        disc_net(gen_net(torch.randn(4, 3))).mean().backward()
        opt_g.step()
    watcher.stop()
    steps = watcher.records()
    assert len(steps) == 6
    # Two top-level modules of one type: the second called (disc_net) is numbered.
    gen, disc = {"Linear.weight", "Linear.bias"}, {"Linear#2.weight", "Linear#2.bias"}
    for index, records in enumerate(steps):
        mine = disc if index % 2 == 0 else gen
        assert {name for phase, name, _ in records if phase == "update"} == mine
        grads = {name.removesuffix(".grad") for phase, name, _ in records if phase == "backward"}
        # The discriminator's gradients are also computed in the generator's steps
        # (while its hooks still learn, in the first two); later steps read only the
        # stepping optimizer's.
        assert mine <= grads and (index < 2 or grads == mine), (index, grads)


def test_a_tensor_that_cannot_be_fingerprinted_is_recorded_as_unknown() -> None:
    class Sparse(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return x.to_sparse()

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), Sparse())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = attach(Watcher(steps=1, model=model))
    opt.zero_grad()
    model(torch.ones(1, 2)).to_dense().sum().backward()
    opt.step()
    records = watcher.records()[0]
    assert ["forward", "Sequential.1", "?"] in records
    assert ["forward", "Sequential", "?"] in records  # the same tensor, returned by the root
    assert watcher.failures == 2
    assert first_divergence(watcher.to_json(), watcher.to_json()) is None


def test_streams_from_different_fingerprint_schemes_are_not_compared() -> None:
    section = train(steps=1, watch_steps=1)
    older = dict(section, algorithm="position-weighted int64 sum")
    divergence = first_divergence(section, older)
    assert divergence is not None and divergence.phase == "structure"
    assert "record both again" in divergence.detail
