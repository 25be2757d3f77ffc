"""The cost table: FLOPs against a hand count, and docs/networks.md in sync with the code."""

from pathlib import Path

from taskloss.networks import RecNet
from taskloss.networks.summary import cost_table, network_cost

DOCS = Path(__file__).resolve().parents[2] / "docs" / "networks.md"


def test_recnet_flops_are_two_per_multiply_add_of_its_convolutions() -> None:
    cost = network_cost("recnet", 24)
    weights = sum(p.numel() for name, p in RecNet().named_parameters() if name.endswith("weight"))
    assert cost.flops == 2 * 24 * 24 * weights  # every conv is "same" padded at full resolution
    assert cost.parameters == cost.trainable == 31_302
    assert (cost.total_stride, cost.min_size) == (1, 1)


def test_frozen_recnet_is_counted_but_not_trainable_in_visual_refinement() -> None:
    cost = network_cost("visual_refinement", 64)
    assert cost.parameters - cost.trainable == 31_302


def test_docs_table_is_the_generated_one() -> None:
    assert cost_table() in DOCS.read_text(), (
        "docs/networks.md is out of date: regenerate its table with "
        "`python -m taskloss.networks.summary`")
