"""Output penalty of a residual refinement (Seitzer et al.'s L_pen = mean |u|).

The visual refinement network outputs ``V = R(x) + s * u``; penalising the mean absolute value of
the residual ``u`` keeps the refinement close to the reconstruction R(x) it starts from.
"""

import torch
from torch import nn

from taskloss.validation import check_float_tensor


def output_penalty(residual: torch.Tensor) -> torch.Tensor:
    """``mean |residual|`` over every element, a scalar.

    Args:
        residual: the refinement u, (B, C, H, W) or (B, C, D, H, W).
    """
    return check_float_tensor(residual, "residual").abs().mean()


class OutputPenalty(nn.Module):
    """Module form of :func:`output_penalty`."""

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return output_penalty(residual)
