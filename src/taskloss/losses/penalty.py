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

    Examples:
        >>> output_penalty(torch.tensor([-1.0, 0.5, 0.0, 0.5]).reshape(1, 1, 2, 2))  # (1 + 0.5 + 0 + 0.5) / 4
        tensor(0.5000)
    """
    return check_float_tensor(residual, "residual").abs().mean()


class OutputPenalty(nn.Module):
    """Module form of :func:`output_penalty`.

    Examples:
        >>> OutputPenalty()(torch.full((2, 1, 3, 3), -0.25))
        tensor(0.2500)
    """

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return output_penalty(residual)
