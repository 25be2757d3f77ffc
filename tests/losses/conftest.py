"""Loss tests run torch single-threaded: their tensors are tiny, and on a 2-core machine shared with
other jobs every 2-thread parallel region waits for a descheduled thread (measured: a 6 x 6
convolution takes 24 ms with 2 threads against 0.3 ms with 1)."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
