"""Base class of the networks: what input sizes a network accepts, and one clear error otherwise.

A network with ``total_stride`` s reduces its input by a factor s at its coarsest feature maps,
before it upsamples again (or before its output, for a discriminator). Generators need height and
width that are multiples of s so that every skip connection and upsampled map lines up; a size
that is not gets an :class:`~taskloss.errors.InputError` that names the nearest sizes to crop or
pad to.
"""

import torch
from torch import Tensor, nn

from taskloss.errors import InputError
from taskloss.validation import check_float_tensor


def holds_everywhere(condition: Tensor) -> bool:
    """Whether a boolean tensor is all true; true for ``meta`` tensors, whose values are unknown.

    Value checks of network inputs use this, so that shape-only runs on the meta device (FLOP
    counts) skip them.
    """
    return condition.is_meta or bool(condition.all())


class Network(nn.Module):
    """An ``nn.Module`` that declares its input channels and the input sizes it accepts.

    Subclasses call :meth:`check_image` on their image input at the start of ``forward``.

    Args:
        in_channels: channels of the image input.
        total_stride: ratio of the input size to the coarsest feature map (1 when there is none).
        size_multiple: height and width must be multiples of this; defaults to ``total_stride``.
            Networks that accept any size (RecNet, the patch discriminator) pass 1.
        min_size: smallest accepted height and width; defaults to ``size_multiple``. Larger where
            reflection padding needs coarse maps of more than one pixel (rounded up to a multiple
            of ``size_multiple``).
        spatial_dims: 2 for images (B, C, H, W), 3 for volumes (B, C, D, H, W); the size rules
            apply to every spatial axis.
    """

    def __init__(
        self,
        in_channels: int,
        total_stride: int,
        *,
        size_multiple: int | None = None,
        min_size: int | None = None,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.total_stride = total_stride
        self.size_multiple = total_stride if size_multiple is None else size_multiple
        # The smallest accepted size is itself a valid size: a multiple of size_multiple.
        minimum = self.size_multiple if min_size is None else min_size
        self.min_size = -(-minimum // self.size_multiple) * self.size_multiple

    def is_valid_size(self, size: int) -> bool:
        """Whether a height or width of ``size`` pixels is accepted."""
        return size >= self.min_size and size % self.size_multiple == 0

    def check_image(self, image: object, name: str = "image", channels: int | None = None) -> Tensor:
        """Check an image input: a real float (B, C, H, W) tensor of accepted channels and size.

        Args:
            image: the input to check.
            name: the argument's name, used in error messages.
            channels: the required number of channels; defaults to ``in_channels``.

        Returns:
            ``image``, typed as a tensor.

        Raises:
            InputError: for a non-tensor, a non-float dtype, another rank (a 2-D image for a 3-D
                network named as such), another number of channels, or a size that is not accepted
                (the message names the nearest sizes to crop or pad to).
        """
        if self.spatial_dims == 3 and isinstance(image, torch.Tensor) and image.ndim == 4:
            raise InputError(f"{type(self).__name__} is a 3-D network and takes volumes (B, C, D, H, W), got "
                             f"{name} of shape {tuple(image.shape)}; pass volumes, or create the network with "
                             "spatial_dims=2 for 2-D images")
        tensor = check_float_tensor(image, name, ndims=(self.spatial_dims + 2,))
        expected = self.in_channels if channels is None else channels
        if tensor.shape[1] != expected:
            axes = "H, W" if self.spatial_dims == 2 else "D, H, W"
            raise InputError(f"{type(self).__name__} expects {name} of shape (B, {expected}, {axes}), "
                             f"got {tuple(tensor.shape)}: pass images with {expected} channel(s)")
        sizes = tuple(int(size) for size in tensor.shape[2:])
        if not all(self.is_valid_size(size) for size in sizes):
            raise InputError(self._size_message(name, *sizes))
        return tensor

    def _size_message(self, name: str, *sizes: int) -> str:
        rules = []
        if self.size_multiple > 1:
            rules.append(f"multiples of {self.size_multiple} (the network's total stride)")
        if self.min_size > self.size_multiple:
            rules.append(f"at least {self.min_size} px")
        crop = [self._valid_below(size) for size in sizes]
        pad = " x ".join(str(self._valid_above(size)) for size in sizes)
        fixes = f"pad to {pad}" if None in crop else f"crop to {' x '.join(map(str, crop))} or pad to {pad}"
        axes = "height and width" if len(sizes) == 2 else "depth, height and width"
        return (f"{type(self).__name__} cannot take {name} of {' x '.join(map(str, sizes))} px: {axes} "
                f"must be {' and '.join(rules)}; {fixes}")

    def _valid_below(self, size: int) -> int | None:
        below = size // self.size_multiple * self.size_multiple
        return below if below >= self.min_size else None

    def _valid_above(self, size: int) -> int:
        return max(-(-size // self.size_multiple) * self.size_multiple, self.min_size)

    def example_inputs(
        self,
        batch: int = 1,
        size: tuple[int, ...] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, ...]:
        """Random inputs of the right form for ``forward`` (for tracing, FLOP counts and tests).

        Args:
            batch: batch size.
            size: (H, W), or (D, H, W) for a 3-D network; defaults to the smallest accepted size.
            dtype: floating dtype of the image inputs.
            device: device of the inputs (``"meta"`` allocates nothing).

        Returns:
            The positional arguments of ``forward``; here one image (B, in_channels, H, W) (or volume
            (B, in_channels, D, H, W)) ~ N(0, 1).
        """
        shape = size or (self.min_size,) * self.spatial_dims
        return (torch.randn(batch, self.in_channels, *shape, dtype=dtype, device=device),)
