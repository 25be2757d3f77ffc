"""Baseline tests run torch on one thread.

DLMRI's tensors are small (thousands of 36-value patches) and it runs thousands of operations on
them; on the shared 2-core CI machine a second intra-op thread mostly spin-waits (measured: 8x the
CPU time of one thread for the same test when the cores are busy).
"""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
