"""Visual refinement of a frozen RecNet (stage 2 of Seitzer et al. 2018): V = R(x) + s * u.

u = UNet(R(x)) is a learned update of the real channel and s a learnable scalar initialised at 0,
so V starts as the identity on R(x) and the adversarial and perceptual losses move it away only as
far as they pay for the penalty on |u|. As in Seitzer et al.'s code, the real channel of R(x) is
min-max scaled per image to [-1, 1] before s * u is added and scaled back afterwards; the
imaginary channel passes through. Scaling back is affine, so this equals
``real + s * u * (max - min) / 2``, which is what is computed: one multiply-add instead of two
rescalings, and V is exactly R(x) (bit for bit) while s = 0.
"""

from typing import NamedTuple

import torch
from torch import Tensor, nn

from taskloss.errors import ConfigError
from taskloss.networks.base import Network
from taskloss.networks.cascade import RecNet
from taskloss.networks.unet import RefinementUNet


class RefinementOutput(NamedTuple):
    """What :class:`VisualRefinement` returns.

    Attributes:
        image: the refined image V (B, 2, H, W) (real, imaginary).
        update: the unscaled update u (B, 1, H, W), the input of the penalty mean |u|.
    """

    image: Tensor
    update: Tensor


class VisualRefinement(Network):
    """Stage 2 of Seitzer et al.: a frozen RecNet followed by a learned, gated refinement.

    The RecNet's parameters are frozen (``requires_grad=False``) and it stays in eval mode, so
    only the refinement UNet and the scalar ``scale`` (s) train; load the stage-1 weights into
    :attr:`recnet` before training.

    Args:
        recnet: the stage-1 reconstruction network; a new :class:`RecNet` by default.
        refiner: the refinement network u = refiner(R(x)), 2 channels in and 1 out; a
            :class:`RefinementUNet` with Seitzer et al.'s settings by default.
        scale_gain: g > 0 in s = g * :attr:`scale` (1: s is the parameter itself). Adam moves a
            parameter by about its learning rate per step whatever the gradient's size, so a gate
            that starts at 0 opens by at most lr per step (0.04 after 184 steps at 2e-4, a demo
            run); g lets s move g times faster while every other parameter's steps stay the same.

    Inputs as :meth:`RecNet.forward`; H and W must also suit the refiner (multiples of 4 and at
    least 12 px for the default).
    """

    def __init__(self, recnet: RecNet | None = None, refiner: RefinementUNet | None = None,
                 scale_gain: float = 1.0) -> None:
        refiner = RefinementUNet() if refiner is None else refiner
        if isinstance(scale_gain, bool) or not isinstance(scale_gain, int | float) or not scale_gain > 0:
            raise ConfigError(f"scale_gain must be a number > 0, got {scale_gain!r}; pass it in the "
                              "refinement run's network_options")
        if refiner.in_channels != 2 or refiner.head.out_channels != 1:
            raise ConfigError(f"refiner must map 2 channels (real, imaginary) to 1 (the update of "
                              f"the real part), got {refiner.in_channels} -> "
                              f"{refiner.head.out_channels}; build it with RefinementUNet(2, 1, ...)")
        super().__init__(in_channels=2, total_stride=refiner.total_stride,
                         size_multiple=refiner.size_multiple, min_size=refiner.min_size)
        self.recnet = RecNet() if recnet is None else recnet
        self.recnet.requires_grad_(False)
        self.recnet.eval()
        self.refiner = refiner
        self.scale = nn.Parameter(torch.zeros(()))
        self.scale_gain = float(scale_gain)

    def train(self, mode: bool = True) -> "VisualRefinement":
        """Set the training mode of the refiner; the frozen RecNet always stays in eval mode."""
        super().train(mode)
        self.recnet.eval()
        return self

    def forward(self, zero_filled: Tensor, kspace: Tensor, mask: Tensor) -> RefinementOutput:
        """Reconstruct with the frozen RecNet, then refine (see :meth:`refine`).

        Args:
            zero_filled: zero-filled image (B, 2, H, W).
            kspace: measured, masked k-space, complex (B, 1, H, W).
            mask: 0/1 sampling mask broadcastable to (B, 1, H, W).

        Returns:
            ``(image, update)``: V (B, 2, H, W) and u (B, 1, H, W).
        """
        self.check_image(zero_filled, "zero_filled")
        with torch.no_grad():
            reconstruction = self.recnet(zero_filled, kspace, mask)
        return self.refine(reconstruction)

    def refine(self, reconstruction: Tensor) -> RefinementOutput:
        """Refine a RecNet output R(x) (B, 2, H, W), e.g. one computed once and cached.

        Returns:
            ``(image, update)``: V with real channel ``R_re + s * u * (max R_re - min R_re) / 2``
            (``s = scale_gain * scale``)
            (per image) and imaginary channel ``R_im``, shape (B, 2, H, W); and u (B, 1, H, W).
        """
        self.check_image(reconstruction, "reconstruction")
        update = self.refiner(reconstruction)
        real = reconstruction[:, :1]
        low, high = torch.aminmax(real.flatten(1), dim=1)
        half_range = ((high - low) / 2).view(-1, 1, 1, 1)
        refined_real = real + (self.scale_gain * self.scale) * update * half_range
        return RefinementOutput(torch.cat([refined_real, reconstruction[:, 1:]], dim=1), update)

    def example_inputs(
        self,
        batch: int = 1,
        size: tuple[int, int] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, ...]:
        """Random ``(zero_filled, kspace, mask)`` as RecNet's, of the smallest valid size by default."""
        return self.recnet.example_inputs(batch, size or (self.min_size, self.min_size), dtype=dtype,
                                          device=device)
