"""Feature vectors for distribution measures (FID, KID) from any perception network.

:func:`image_features` runs a :class:`~taskloss.features.FeatureNetwork` (the shipped domain
network, EfficientNet-Lite0, VGG-19, the 3-D MedicalNet networks, ...) batch by batch without
gradients and averages one layer's activation over its spatial axes: one row per image or volume,
the input of :func:`taskloss.metrics.distribution.frechet_distance` and
:func:`~taskloss.metrics.distribution.kernel_inception_distance` (FID takes Inception-v3's
global-average-pooled last block the same way).
"""

import torch

from taskloss.errors import InputError
from taskloss.features.base import FeatureNetwork, prepare_input, resolve_layers
from taskloss.validation import check_finite, check_float_tensor


def image_features(
    network: FeatureNetwork,
    images: torch.Tensor,
    layer: str,
    *,
    input_range: tuple[float, float],
    batch_size: int = 32,
) -> torch.Tensor:
    """Global-average-pooled activations of ``layer``, one row per image, computed without gradients.

    Args:
        network: the perception network (put in eval mode by the caller, as for any evaluation).
        images: (N, C, H, W) images, or (N, C, D, H, W) volumes for a 3-D network; C = 1 or the
            network's channel count; values in ``input_range``.
        layer: one layer name (or alias) of the network.
        input_range: (low, high), the intensities that map to 0 and 1 (see
            :func:`taskloss.features.prepare_input`); low < high.
        batch_size: images per forward pass, >= 1.

    Returns:
        float64 tensor (N, C_layer) on the images' device.

    Raises:
        InputError: for bad images, an unknown layer, a bad batch size or range.

    Examples:
        >>> from taskloss.features.domain import load_domain_network
        >>> from taskloss.metrics.distribution import frechet_distance
        >>> net = load_domain_network().eval()
        >>> images = torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> rows = image_features(net, images, "conv4_2", input_range=(0.0, 1.0), batch_size=4)
        >>> tuple(rows.shape), rows.dtype
        ((6, 64), torch.float64)
        >>> float(frechet_distance(rows, rows)) < 1e-9
        True
    """
    images = check_float_tensor(images, "images")
    check_finite(images, "images")
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size} must be >= 1")
    if len(input_range) != 2 or not float(input_range[0]) < float(input_range[1]):
        raise InputError(f"input_range={input_range} must be (low, high) with low < high")
    (name,) = resolve_layers(network, [layer])
    rows = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size]
            prepared = prepare_input(batch, input_range, network.input_spec)
            activation = network(prepared, [name])[name]
            rows.append(activation.flatten(2).mean(dim=2).to(torch.float64))
    return torch.cat(rows)
