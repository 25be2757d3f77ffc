"""CompositeLoss: fixed weights, Seitzer's first-batch rule, state across save/load and processes."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from taskloss.errors import ConfigError, InputError
from taskloss.losses import (
    SEITZER_FIRST_WEIGHTS,
    SEITZER_FIXED_WEIGHTS,
    CompositeLoss,
    L1Loss,
    MSELoss,
    PerceptualLoss,
)
from taskloss.losses.balance import TermNormalizer

TERMS = ("adversarial", "feature_matching", "vgg", "penalty")


def _raw(values: tuple[float, ...], requires_grad: bool = False) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(v, requires_grad=requires_grad) for name, v in zip(TERMS, values, strict=True)}


def test_fixed_weights_sum_and_report_every_term() -> None:
    loss = CompositeLoss.seitzer("fixed")
    raw = _raw((0.7, 0.2, 0.05, 0.3), requires_grad=True)
    out = loss(raw)
    expected = 0.5 * 0.7 + 1.0 * 0.2 + 10.0 * 0.05 + 2.0 * 0.3
    torch.testing.assert_close(out.total, torch.tensor(expected))
    assert out.scalars() == pytest.approx({"total": expected, "adversarial": 0.35, "adversarial_raw": 0.7,
                                           "feature_matching": 0.2, "feature_matching_raw": 0.2,
                                           "vgg": 0.5, "vgg_raw": 0.05, "penalty": 0.6, "penalty_raw": 0.3})
    out.total.backward()
    assert [float(raw[name].grad) for name in TERMS] == pytest.approx(list(SEITZER_FIXED_WEIGHTS.values()))
    assert not out.raw["vgg"].requires_grad and not out.weighted["vgg"].requires_grad


def test_first_rule_starts_each_term_at_its_weight_then_freezes() -> None:
    loss = CompositeLoss.seitzer("first")
    first = loss(_raw((0.7, 0.2, 0.05, 0.3)))
    # 1/2 (L_adv/M + L_feat/N) + L_VGG/O + alpha L_pen with alpha L_pen = 0.1 at the first batch.
    assert [float(first.weighted[n]) for n in TERMS] == pytest.approx([0.5, 0.5, 1.0, 0.1])
    torch.testing.assert_close(first.total, torch.tensor(2.1))
    assert loss.normalizer is not None and loss.normalizer.frozen
    second = _raw((1.4, 0.1, 0.05, 0.03), requires_grad=True)
    out = loss(second)
    expected = 0.5 * 1.4 / 0.7 + 0.5 * 0.1 / 0.2 + 1.0 + 0.1 * 0.03 / 0.3
    torch.testing.assert_close(out.total, torch.tensor(expected))
    out.total.backward()
    gradients = [float(second[n].grad) for n in TERMS]
    assert gradients == pytest.approx([0.5 / 0.7, 0.5 / 0.2, 1.0 / 0.05, 0.1 / 0.3], rel=1e-5)
    torch.testing.assert_close(loss.multipliers(), torch.tensor([0.5 / 0.7, 0.5 / 0.2, 1 / 0.05, 0.1 / 0.3]))


def test_first_rule_over_several_batches_and_in_evaluation() -> None:
    loss = CompositeLoss({"a": 1.0, "b": 2.0}, normalize="first", normalize_batches=2)
    loss.eval()
    evaluated = loss({"a": torch.tensor(3.0), "b": torch.tensor(5.0)})  # not recorded
    assert evaluated.scalars()["total"] == pytest.approx(3.0)
    loss.train()
    loss({"a": torch.tensor(1.0), "b": torch.tensor(4.0)})
    loss({"a": torch.tensor(3.0), "b": torch.tensor(2.0)})
    out = loss({"a": torch.tensor(4.0), "b": torch.tensor(6.0)})
    torch.testing.assert_close(out.total, torch.tensor(4.0 / 2.0 + 2.0 * 6.0 / 3.0))


def test_normalisers_survive_save_and_load() -> None:
    loss = CompositeLoss.seitzer("first")
    loss(_raw((0.7, 0.2, 0.05, 0.3)))
    state = loss.state_dict()
    assert set(state) == {"normalizer.total", "normalizer.count", "normalizer._extra_state"}
    resumed = CompositeLoss.seitzer("first")
    resumed.load_state_dict(state)
    batch = _raw((1.0, 1.0, 1.0, 1.0))
    torch.testing.assert_close(resumed(batch).total, loss(batch).total)
    renamed = CompositeLoss({"adv": 0.5, "feat": 0.5, "vgg": 1.0, "pen": 0.1}, normalize="first")
    with pytest.raises(ConfigError, match=r"the checkpoint normalises the terms \['adversarial'"):
        renamed.load_state_dict(state)


def test_supervised_terms_on_pairs() -> None:
    loss = CompositeLoss({"l1": 10.0, "mse": 1.0}, losses={"l1": L1Loss(), "mse": MSELoss()})
    pred, target = torch.rand(2, 1, 8, 9), torch.rand(2, 1, 8, 9)
    out = loss(loss.pair_terms(pred, target))
    torch.testing.assert_close(out.total, 10 * F.l1_loss(pred, target) + F.mse_loss(pred, target))


def test_held_term_modules_bring_their_state() -> None:
    perceptual = PerceptualLoss(layers=["conv1_2"], layer_weights="balance", weights="random", seed=0)
    loss = CompositeLoss({"perceptual": 1.0}, losses={"perceptual": perceptual})
    loss(loss.pair_terms(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)))
    keys = set(loss.state_dict())
    assert {"losses.perceptual.normalizer.total", "losses.perceptual.normalizer.count"} <= keys


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CompositeLoss({}), "weights is empty"),
        (lambda: CompositeLoss({"a": 1.0}, normalize="auto"), "normalize='auto' is unknown"),  # type: ignore[arg-type]
        (lambda: CompositeLoss({"a": 1.0}, losses={"b": L1Loss()}), r"losses names \['b'\]"),
        (lambda: CompositeLoss({"a": 1.0}, normalize="first", normalize_batches=0), "must be >= 1"),
        (lambda: CompositeLoss({"a": 1.0}).pair_terms(torch.zeros(1), torch.zeros(1)), "pair_terms needs"),
    ],
)
def test_bad_configuration_is_named(make, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_terms_are_named() -> None:
    loss = CompositeLoss({"a": 1.0, "b": 1.0}, normalize="first")
    with pytest.raises(InputError, match=r"missing \['b'\], unknown \['c'\]"):
        loss({"a": torch.tensor(1.0), "c": torch.tensor(1.0)})
    with pytest.raises(InputError, match=r"term 'b' must be a scalar tensor, got \(4,\)"):
        loss({"a": torch.tensor(1.0), "b": torch.ones(4)})
    with pytest.raises(InputError, match=r"cannot normalise loss term 'b' by its size: it is 0 on all 1 "
                                         r"balancing batches; balance over more batches"):
        loss({"a": torch.tensor(1.0), "b": torch.tensor(0.0)})
    with pytest.raises(InputError, match=r"cannot normalise loss term 'b' by its size: its value on a "
                                         r"balancing batch is -1.0; a term must be finite and >= 0"):
        loss({"a": torch.tensor(1.0), "b": torch.tensor(-1.0)})
    assert loss.normalizer is not None and not loss.normalizer.frozen


def test_a_term_that_is_zero_on_some_balancing_batches_is_divided_by_its_mean_over_all() -> None:
    """A hinge term (0 where it is satisfied) on 3 balancing batches: 0, 0.3, 0.6 -> divisor 0.3."""
    loss = CompositeLoss({"a": 1.0, "hinge": 2.0}, normalize="first", normalize_batches=3).train()
    first = loss({"a": torch.tensor(2.0), "hinge": torch.tensor(0.0)})
    assert float(first.weighted["hinge"]) == 0.0 and float(first.weighted["a"]) == 1.0
    loss({"a": torch.tensor(2.0), "hinge": torch.tensor(0.3)})
    loss({"a": torch.tensor(2.0), "hinge": torch.tensor(0.6)})
    assert loss.normalizer is not None and loss.normalizer.frozen
    assert float(loss({"a": torch.tensor(4.0), "hinge": torch.tensor(0.6)}).weighted["hinge"]) == pytest.approx(4.0)
    zero = CompositeLoss({"a": 1.0, "hinge": 1.0}, normalize="first", normalize_batches=2).train()
    zero({"a": torch.tensor(1.0), "hinge": torch.tensor(0.0)})
    with pytest.raises(InputError, match=r"'hinge' by its size: it is 0 on all 2 balancing batches"):
        zero({"a": torch.tensor(1.0), "hinge": torch.tensor(0.0)})


def test_seitzer_presets() -> None:
    assert CompositeLoss.seitzer("first").term_names == TERMS
    assert SEITZER_FIRST_WEIGHTS == {"adversarial": 0.5, "feature_matching": 0.5, "vgg": 1.0, "penalty": 0.1}
    assert "normalize='fixed'" in repr(CompositeLoss.seitzer("fixed"))


def _two_process_worker(rank: int, init_file: str, results: "mp.Queue[list[float]]") -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        normalizer = TermNormalizer(("a", "b"), batches=1)
        normalizer.divisors(torch.tensor([1.0, 2.0]) if rank == 0 else torch.tensor([3.0, 6.0]), record=True)
        results.put((normalizer.total / normalizer.count).tolist())
    finally:
        dist.destroy_process_group()


def test_normalisers_agree_across_processes(tmp_path) -> None:
    # fork starts in milliseconds (spawn would re-import torch in each child); the children only
    # touch 2-element tensors, so the parent's thread pools do not matter.
    context = mp.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_two_process_worker, args=(rank, str(tmp_path / "init"), results))
               for rank in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == [[2.0, 4.0], [2.0, 4.0]]  # the mean over both processes' first batches
