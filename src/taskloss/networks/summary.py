"""Parameter counts and FLOPs of the registered networks: the table of ``docs/networks.md``.

Run ``python -m taskloss.networks.summary`` to print the Markdown table. Networks are built and run
on PyTorch's ``meta`` device, which tracks shapes without allocating or computing, so the whole
table takes a second or two. FLOPs are those counted by ``torch.utils.flop_counter`` for one
forward pass of one image: convolutions and matrix products, 2 per multiply-add; normalisation,
activations, pooling, interpolation and FFTs are not counted (they are a small share for all of
these networks).
"""

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from taskloss.networks.factory import NETWORKS, create_network


@dataclass(frozen=True)
class NetworkCost:
    """Size and compute of one network for one square image.

    Attributes:
        name: registry name.
        image_size: height and width of the image, px.
        parameters: all parameters (frozen ones included).
        trainable: parameters with ``requires_grad``.
        flops: forward FLOPs per image (see the module docstring).
        total_stride: the network's total stride.
        min_size: the smallest accepted height and width, px.
    """

    name: str
    image_size: int
    parameters: int
    trainable: int
    flops: int
    total_stride: int
    min_size: int


def network_cost(name: str, image_size: int | None = None, **kwargs: object) -> NetworkCost:
    """Count the parameters and forward FLOPs of ``create_network(name, **kwargs)``.

    Args:
        name: a registered network name.
        image_size: square image size; defaults to the size the entry's defaults are meant for.
        kwargs: constructor arguments, as for :func:`create_network`.
    """
    size = NETWORKS[name].image_size if image_size is None else image_size
    with torch.device("meta"):
        network = create_network(name, **kwargs)
        inputs = network.example_inputs(1, (size, size), device="meta")
        with FlopCounterMode(display=False) as counter:
            network(*inputs)
    return NetworkCost(
        name=name,
        image_size=size,
        parameters=sum(p.numel() for p in network.parameters()),
        trainable=sum(p.numel() for p in network.parameters() if p.requires_grad),
        flops=counter.get_total_flops(),
        total_stride=network.total_stride,
        min_size=network.min_size,
    )


def cost_table() -> str:
    """Markdown table of every registered network (registry order) at its default settings and size."""
    lines = [
        "| network | study | role | image (px) | parameters | trainable | GFLOPs / image "
        "| total stride | min size (px) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in NETWORKS.items():
        cost = network_cost(name)
        lines.append(
            f"| `{name}` | {entry.study} | {entry.role} | {cost.image_size} | {cost.parameters:,} "
            f"| {cost.trainable:,} | {cost.flops / 1e9:.2f} | {cost.total_stride} | {cost.min_size} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(cost_table())
