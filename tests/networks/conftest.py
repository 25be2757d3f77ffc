"""Small versions of every registered network, for fast forward/backward tests on odd sizes."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from taskloss.networks import Network, RefinementUNet, create_network

# name -> (constructor overrides, an odd-but-valid (H, W)). Sizes are odd multiples of the total
# stride (any odd size where the network has none), so that no size is accidentally a power of 2.
SMALL: dict[str, tuple[Callable[[], dict[str, Any]], tuple[int, int]]] = {
    "crn_64": (lambda: {"channels": (8, 6, 4)}, (12, 20)),
    "crn_128": (lambda: {"channels": (6, 4)}, (6, 10)),
    "crn_256": (lambda: {"channels": (4, 4, 4, 4)}, (24, 40)),
    "unet": (lambda: {"widths": (4, 8, 16)}, (12, 20)),
    "resnet": (lambda: {"base_width": 4, "num_blocks": 2}, (12, 20)),
    "recnet": (lambda: {}, (11, 13)),
    "recnet_d5c5": (lambda: {"width": 8}, (11, 13)),
    "refinement_unet": (lambda: {"widths": (4, 8, 16)}, (12, 20)),
    "visual_refinement": (lambda: {"refiner": RefinementUNet(widths=(4, 8, 16))}, (12, 20)),
    "patch_discriminator": (
        lambda: {"widths": (4, 8, 8), "strides": (2, 2, 1), "dropout_layers": (1, 2)}, (9, 13)),
    "dagan_generator": (lambda: {"encoder_widths": (4, 8, 8), "decoder_widths": (8, 8, 4)}, (24, 40)),
    "dagan_discriminator": (lambda: {"base_width": 2, "image_size": (64, 192)}, (64, 192)),
    "segmentation_unet": (lambda: {"widths": (4, 8)}, (6, 10)),
    "segmentation_resnet": (lambda: {"base_width": 4, "num_blocks": 1}, (12, 20)),
}


@pytest.fixture
def small_network() -> Callable[[str], tuple[Network, tuple[int, int]]]:
    """Build the small version of a registered network; returns it and its test size (H, W)."""

    def build(name: str) -> tuple[Network, tuple[int, int]]:
        overrides, size = SMALL[name]
        return create_network(name, **overrides()), size

    return build


@pytest.fixture
def small_network_names() -> set[str]:
    """Names of the networks that have a small test configuration."""
    return set(SMALL)


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run each test on one intra-op thread: on tensors this small, two threads cost more than they
    save (gradcheck's thousands of tiny ops take ~10x the CPU time on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
