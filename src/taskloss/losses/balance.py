"""Per-term normalisers measured on the first K training batches, then frozen.

Both balancing rules of the source document are "divide each loss term by its typical value":
Chen & Koltun divide each perceptual layer by its mean loss (measured over many batches), Seitzer
et al. divide each term by its value at the first iteration. :class:`TermNormalizer` implements
both: it averages each term's batch value over the first ``batches`` training calls, uses that
mean as the term's divisor (during those calls, the running mean so far), and then freezes it.

The running sums are buffers, so the divisors travel in ``state_dict()`` and a resumed run keeps
them; the term names travel as extra state and are checked on load. Under
``torch.distributed``, batch values are averaged over all processes first, so every process ends
with the same divisors.
"""

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from taskloss.errors import ConfigError, InputError


class TermNormalizer(nn.Module):
    """Divisors for named loss terms, the mean of each term over the first ``batches`` updates.

    Args:
        names: the terms, in the order of the value vectors passed to :meth:`divisors`.
        batches: K, the number of training batches averaged before the divisors freeze (>= 1).

    Examples:
        >>> normalizer = TermNormalizer(("pixel", "conv1_2"), batches=2)
        >>> normalizer.divisors(torch.tensor([1.0, 10.0]), record=True)
        tensor([ 1., 10.])
        >>> normalizer.divisors(torch.tensor([3.0, 30.0]), record=True)  # the mean of the two batches
        tensor([ 2., 20.])
        >>> normalizer.frozen, normalizer.divisors(torch.tensor([9.0, 9.0]), record=True)  # frozen from now on
        (True, tensor([ 2., 20.]))
    """

    def __init__(self, names: Sequence[str], batches: int) -> None:
        super().__init__()
        if batches < 1:
            raise ConfigError(f"the number of balancing batches must be >= 1, got {batches}")
        self.names = tuple(names)
        self.batches = int(batches)
        self.register_buffer("total", torch.zeros(len(self.names)))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @property
    def frozen(self) -> bool:
        """True once ``batches`` batches have been recorded."""
        return int(self.count) >= self.batches

    def divisors(self, values: torch.Tensor, record: bool) -> torch.Tensor:
        """The divisor of each term for this batch, shape (T,), detached, dtype of ``values``.

        Args:
            values: this batch's value of each term, shape (T,) (its gradient is not used).
            record: add this batch to the mean when not yet frozen (pass ``module.training``).
                Before any batch is recorded, a call that does not record divides each term by
                its own value (by 1 where that value is 0).

        A term may be 0 on some balancing batches (a hinge, e.g. :class:`~taskloss.losses.ObserverLoss`,
        that is satisfied there): until a positive value is recorded its divisor is 1, which leaves
        it 0; once frozen every divisor is the term's mean over the balancing batches.

        Raises:
            InputError: when a recorded value is not finite or negative, or a term's mean over all the
                balancing batches is 0 (a term that is 0 on every balancing batch cannot be normalised
                by its size).
        """
        values = values.detach()
        if record and not self.frozen:
            batch = _mean_over_processes(values.to(self.total.dtype))
            self._check_recordable(batch, self.total + batch, int(self.count) + 1 >= self.batches)
            self.total += batch
            self.count += 1
        if int(self.count) == 0:
            return torch.where(values > 0, values, torch.ones_like(values))
        mean = self.total / self.count
        return torch.where(mean > 0, mean, torch.ones_like(mean)).to(values.dtype)

    def _check_recordable(self, batch: torch.Tensor, total: torch.Tensor, last: bool) -> None:
        for name, value, summed in zip(self.names, batch.cpu(), total.cpu(), strict=True):
            if not (torch.isfinite(value) and value >= 0):
                raise InputError(f"cannot normalise loss term {name!r} by its size: its value on a "
                                 f"balancing batch is {float(value)}; a term must be finite and >= 0 there "
                                 "(check the inputs, or give that term a fixed weight instead)")
            if last and not summed > 0:
                raise InputError(f"cannot normalise loss term {name!r} by its size: it is 0 on all "
                                 f"{self.batches} balancing batches; balance over more batches "
                                 "(normalize_batches) or give that term a fixed weight instead")

    def get_extra_state(self) -> dict[str, Any]:
        return {"names": list(self.names), "batches": self.batches}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        names = tuple(state["names"])
        if names != self.names:
            raise ConfigError(f"the checkpoint normalises the terms {list(names)} but this loss "
                              f"has {list(self.names)}; build the loss with the same terms")
        self.batches = int(state["batches"])

    def extra_repr(self) -> str:
        return f"names={list(self.names)}, batches={self.batches}"


def _mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """Average ``values`` over the processes of the default group (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / dist.get_world_size()
