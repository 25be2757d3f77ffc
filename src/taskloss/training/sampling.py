"""Deterministic, resumable, DDP-aware sampling of dataset indices.

The data order of epoch ``e`` is a permutation seeded by ``(seed, e)``, padded by wrapping to a
multiple of the number of processes; process ``r`` of ``W`` takes every W-th index starting at
``r``. So the k-th batch of every process together form one contiguous block of the permutation:
a DDP run sees the same global batches as a single process with ``W`` times the batch size, and a
resumed run can skip exactly the batches it has already trained on.
"""

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[int]):
    """Sampler over ``range(length)`` for one process of ``world_size``.

    Args:
        length: dataset size.
        seed: base seed of the permutations.
        shuffle: permute (training) or keep the order (evaluation).
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, length: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> None:
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def seek(self, epoch: int, start: int = 0) -> None:
        """Select the permutation of ``epoch`` and skip this process's first ``start`` indices.

        (Not named ``set_epoch``: Fabric's data loader calls ``set_epoch`` with its own count of
        iterations, which would override the position of a resumed run.)
        """
        self.epoch = epoch
        self.start = start

    def indices(self) -> list[int]:
        """This process's indices of the current epoch, before skipping."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        padded = -(-self.length // self.world_size) * self.world_size
        order = (order * (padded // self.length + 1))[:padded]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return -(-self.length // self.world_size) - self.start


class IndexedDataset(Dataset[dict[str, Any]]):
    """Wraps a dataset of dict items and adds ``"index"``: the item's position in the dataset.

    Evaluation uses it to gather per-image results across processes without duplicates.
    """

    def __init__(self, dataset: Dataset[dict[str, Any]]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item["index"] = index
        return item
