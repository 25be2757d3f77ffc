"""Numerics shared by the losses: reduce in at least float32 under mixed precision."""

import torch


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 if it is float16 or bfloat16 (autocast outputs), else unchanged.

    Distances and means over millions of activations lose precision (or overflow) in half
    precision; float64 inputs stay float64 so gradient checks remain exact.

    Examples:
        >>> half, double = torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.float64)
        >>> full_precision(half).dtype, full_precision(double).dtype
        (torch.float32, torch.float64)
    """
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
