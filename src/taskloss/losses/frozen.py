"""The shared base of losses computed on a frozen network: :class:`FrozenNetworkLoss`.

:class:`~taskloss.losses.PerceptualLoss` (a perception network's features) and
:class:`~taskloss.losses.TaskLoss` (the task network's features and output) are both a weighted
sum of named terms ``sum_t lambda_t * D_t`` measured between a prediction and a target on a network
that does not train. What they share is written here once:

- **Freezing.** The network's parameters do not require grad and it is in eval mode (its batch-norm
  statistics and dropout fixed); :meth:`FrozenNetworkLoss.train` keeps it so, whatever the loss's
  own mode (the loss's mode only decides whether slices are drawn and balancing batches recorded).
  Gradients flow through the network to the prediction only.
- **Not a submodule.** The network's weights are not in ``parameters()`` (an optimiser never sees
  them) or ``state_dict()`` (checkpoints stay small); ``.to()``, ``.cuda()``, ``.half()`` and
  ``.double()`` move and convert it with the loss (a network shared by several losses moves for all).
- **Dimensions** (``spatial_dims``). 2: a 2-D network; images (B, C, H, W) pass whole and volumes
  (B, C, D, H, W) are scored 2.5-D, slice by slice along ``slice_axes``, the value of a volume
  being the mean over those axes of the mean over their slices (in training mode a random
  ``slice_fraction`` of the slices, torch's global generator, the same slices for the whole
  batch). 3: a 3-D network; volumes pass whole and images are refused.
- **Range.** ``input_range`` (low, high) declares the intensities the network's input scale maps
  from; :meth:`FrozenNetworkLoss._check_target_range` refuses targets well outside it
  (:func:`taskloss.validation.check_declared_range`, with the subclass's :attr:`range_advice`).
- **Weights.** ``layer_weights``: None (all 1), one number per term, a mapping term -> weight, or
  "balance" (each term divided by its mean over the first ``balance_batches`` training batches,
  :class:`~taskloss.losses.balance.TermNormalizer`); ``reduction`` "mean" or "none" (per item).

A subclass builds its network, calls ``super().__init__`` with it, names its terms with
:meth:`FrozenNetworkLoss._set_terms`, implements :meth:`FrozenNetworkLoss._image_terms` (the terms,
per item, of inputs the network takes whole) and :attr:`FrozenNetworkLoss.description`, and
writes its ``forward`` from :meth:`FrozenNetworkLoss._all_terms` and :meth:`FrozenNetworkLoss._finish`.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeAlias, TypeVar

import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.losses.balance import TermNormalizer
from taskloss.validation import check_declared_range, explain_nonfinite

Reduction = Literal["mean", "none"]
SpatialDims = Literal[2, 3]
LayerWeights: TypeAlias = Sequence[float] | Mapping[str, float] | Literal["balance"] | None
Self = TypeVar("Self", bound="FrozenNetworkLoss")

ANY_3D_NETWORK = "a module with spatial_dims = 3"
"""How a refused ``spatial_dims=3`` names a network that would do, when the subclass knows no better."""


class FrozenNetworkLoss(nn.Module):
    """A loss of named terms measured on a frozen network (see the module docstring).

    Args:
        network: the network; frozen (parameters without grad) and put in eval mode in place. It is
            held, not registered as a submodule.
        network_dims: 2 or 3, the network's own dimensions, checked against ``spatial_dims``; None
            (not known) accepts either.
        description: how messages and reports name the network (default: its class name).
        input_range: (low, high) with low < high, the intensities of the images the network takes.
        spatial_dims: 2 (images whole; volumes 2.5-D, slice by slice) or 3 (volumes whole).
        slice_axes: for volumes with ``spatial_dims=2``: the distinct axes sliced, among 2 (D,
            slices (H, W)), 3 (H, slices (D, W)) and 4 (W, slices (D, H)).
        slice_fraction: in (0, 1]; for ``spatial_dims=2``, in training mode, the fraction of slices
            drawn per axis and call (at least one); eval mode uses every slice.
        reduction: "mean" (a scalar, the mean over the batch) or "none" (shape (B,)).
        networks_3d: for the message refusing ``spatial_dims=3`` on a 2-D network: networks that
            would do.

    Raises:
        ConfigError: for an input_range, slice_axes, slice_fraction, reduction or spatial_dims out of
            bounds, or a spatial_dims the network's dimensions contradict.

    Examples:
        A loss of one term, the mean absolute difference of a convolution's outputs (for images of
        ones against zeros: the mean over output channels of |sum of the channel's weights|):

        >>> import torch
        >>> from torch import nn
        >>> class MeanLoss(FrozenNetworkLoss):
        ...     description = "mean activation"
        ...     def _image_terms(self, pred, target, labels=None):
        ...         return (self.network(pred) - self.network(target)).abs().flatten(1).mean(1)[:, None]
        ...     def forward(self, pred, target):
        ...         return self._finish(self._weighted_sum(self._all_terms(pred, target)), pred, target)
        >>> _ = torch.manual_seed(0)
        >>> loss = MeanLoss(nn.Conv2d(1, 2, 3))
        >>> loss._set_terms(("mean",), None)
        >>> loss.train().network.training, loss.network.weight.requires_grad, list(loss.parameters())
        (False, False, [])
        >>> round(loss(torch.ones(1, 1, 5, 5), torch.zeros(1, 1, 5, 5)).item(), 4)
        0.2824
        >>> round(loss.network.weight.sum(dim=(1, 2, 3)).abs().mean().item(), 4)
        0.2824
    """

    terms: tuple[str, ...]
    """The names of the terms, in the order of the columns of :meth:`_image_terms`."""

    range_advice = "pass the range your images are scaled to, e.g. input_range=({low:.4g}, {high:.4g})"
    """The fix an out-of-range target is told (formatted with the target's ``low`` and ``high``)."""

    def __init__(
        self,
        network: nn.Module,
        *,
        network_dims: int | None = None,
        description: str | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        spatial_dims: SpatialDims = 2,
        slice_axes: Sequence[int] = (2, 3, 4),
        slice_fraction: float = 1.0,
        reduction: Reduction = "mean",
        networks_3d: str = ANY_3D_NETWORK,
    ) -> None:
        super().__init__()
        check_frozen_options(input_range, slice_axes, slice_fraction, reduction)
        self.network_description = description or type(network).__name__
        check_network_dims(spatial_dims, spatial_dims if network_dims is None else network_dims,
                           self.network_description, networks_3d)
        for parameter in network.parameters():  # not network.requires_grad_: ScriptModules lack it
            parameter.requires_grad_(False)
        network.eval()
        # Not a submodule (see the module docstring); _apply below moves it with the loss.
        object.__setattr__(self, "_network", network)
        self.spatial_dims = spatial_dims
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.slice_axes = tuple(slice_axes)
        self.slice_fraction = float(slice_fraction)
        self.reduction = reduction
        self.terms = ()
        self.normalizer: TermNormalizer | None = None

    @property
    def network(self) -> nn.Module:
        """The frozen network."""
        return self._network

    @property
    def description(self) -> str:
        """One line for reports: the terms, their weighting and the network."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return self.description

    def train(self: Self, mode: bool = True) -> Self:
        """Set the loss's mode (slice drawing, balancing); the network stays in eval mode."""
        super().train(mode)
        self._network.eval()
        return self

    def _apply(self: Self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Self:
        self._network._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def _set_terms(self, terms: Sequence[str], layer_weights: LayerWeights, balance_batches: int = 20,
                   aliases: Mapping[str, str] | None = None) -> None:
        """Name the terms and fix their weights (``aliases``: other names of terms, for a mapping).

        Raises:
            ConfigError: for layer_weights that do not fit the terms (see :func:`fixed_weights`).
        """
        self.terms = tuple(terms)
        if isinstance(layer_weights, str) and layer_weights == "balance":
            self.normalizer = TermNormalizer(self.terms, balance_batches)
            fixed = torch.ones(len(self.terms))
        else:
            self.normalizer = None
            fixed = fixed_weights(self.terms, layer_weights, aliases or {})
        self.register_buffer("term_weights", fixed, persistent=False)

    def _image_terms(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Per-item terms (N, T) of inputs the network takes whole (2-D images, or volumes in 3-D).

        ``labels`` are the per-item labels of a loss that takes them (for slices: the slices' labels).
        """
        raise NotImplementedError

    def _check_volume(self, volume: torch.Tensor) -> None:
        """Refuse a volume too small for the network (``spatial_dims=3``); no check by default."""

    def _check_slices(self, volume: torch.Tensor, axis: int) -> None:
        """Refuse slices along ``axis`` too small for the network; no check by default."""

    def _check_target_range(self, target: torch.Tensor) -> None:
        """Refuse a target far outside ``input_range`` (a wrong declared range), with :attr:`range_advice`."""
        check_declared_range(target, "target", self.input_range, self.range_advice)

    def _all_terms(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                   ) -> torch.Tensor:
        """Per-item terms (B, T): volumes whole (``spatial_dims=3``), 2.5-D, or images.

        Raises:
            InputError: for images with ``spatial_dims=3``, or inputs too small for the network.
        """
        if self.spatial_dims == 3:
            check_volume_input(pred, type(self).__name__, self.network_description)
            self._check_volume(pred)
            return self._image_terms(pred, target, labels)
        if pred.ndim == 5:
            return self._volume_terms(pred, target, labels)
        return self._image_terms(pred, target, labels)

    def _volume_terms(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Per-volume terms (B, T) of volumes (B, C, D, H, W): mean over ``slice_axes`` of the mean over their slices.

        ``labels``, when given, are label maps (B, D, H, W), sliced as the volumes are.
        """
        per_axis = []
        for axis in self.slice_axes:
            self._check_slices(pred, axis)
            index = self._slice_index(pred.shape[axis], pred.device)
            pred_part, target_part, labels_part = pred, target, None if labels is None else labels[:, None]
            if index is not None:  # a drawn subset; all slices need no copy
                pred_part, target_part = pred.index_select(axis, index), target.index_select(axis, index)
                labels_part = None if labels_part is None else labels_part.index_select(axis, index)
            sliced_labels = None if labels_part is None else as_slices(labels_part, axis)[:, 0]
            terms = self._image_terms(as_slices(pred_part, axis), as_slices(target_part, axis), sliced_labels)
            per_axis.append(terms.reshape(pred.shape[0], pred_part.shape[axis], -1).mean(dim=1))
        return torch.stack(per_axis).mean(dim=0)

    def _slice_index(self, count: int, device: torch.device) -> torch.Tensor | None:
        """The slices drawn along an axis of ``count``: a random ``slice_fraction`` in training, else None (all)."""
        if self.training and self.slice_fraction < 1.0:
            kept = max(1, round(self.slice_fraction * count))
            return torch.randperm(count, device=device)[:kept]
        return None

    def _weights(self, raw: torch.Tensor) -> torch.Tensor:
        """The multiplier of each term (T,): the fixed weights, or 1 / the balancing divisors."""
        if self.normalizer is None:
            return self.term_weights.to(raw.dtype)
        return 1.0 / self.normalizer.divisors(raw.mean(dim=0), record=self.training)

    def _weighted_sum(self, raw: torch.Tensor) -> torch.Tensor:
        """The value per item (B,) of its terms (B, T)."""
        return raw @ self._weights(raw)

    def _finish(self, value: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss from the values per item (B,): non-finite values explained, then ``reduction``.

        Raises:
            InputError: for a non-finite value, naming non-finite inputs where there are any.
        """
        explain_nonfinite(value, pred=pred, target=target)
        return value.mean() if self.reduction == "mean" else value

    def _named(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Terms (B, T) -> term name -> its mean over the batch."""
        return dict(zip(self.terms, raw.mean(dim=0), strict=True))


def as_slices(volume: torch.Tensor, axis: int) -> torch.Tensor:
    """The 2-D slices of a (B, C, D, H, W) volume along ``axis`` as a batch (B * k, C, a, b).

    Examples:
        >>> volume = torch.zeros(2, 1, 4, 5, 6)
        >>> as_slices(volume, 2).shape, as_slices(volume, 4).shape  # 2 * 4 slices of 5 x 6, 2 * 6 of 4 x 5
        (torch.Size([8, 1, 5, 6]), torch.Size([12, 1, 4, 5]))
    """
    plane = [volume.shape[d] for d in (2, 3, 4) if d != axis]
    return volume.movedim(axis, 1).reshape(-1, volume.shape[1], *plane)


def check_frozen_options(input_range: tuple[float, float], slice_axes: Sequence[int], slice_fraction: float,
                         reduction: str) -> None:
    """Refuse an ``input_range``, ``slice_axes``, ``slice_fraction`` or ``reduction`` out of bounds.

    Raises:
        ConfigError: naming the option and a valid value.

    Examples:
        >>> check_frozen_options((0.0, 1.0), (2, 3, 4), 0.5, "mean")
        >>> check_frozen_options((0.0, 1.0), (2, 3, 4), 0.0, "mean")
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: slice_fraction=0.0 must be in (0, 1]
    """
    if len(input_range) != 2 or not float(input_range[0]) < float(input_range[1]):
        raise ConfigError(f"input_range={input_range!r} must be (low, high) with low < high, e.g. "
                          "(0.0, 1.0) or (-1.0, 1.0)")
    if not slice_axes or len(set(slice_axes)) != len(slice_axes) or not set(slice_axes) <= {2, 3, 4}:
        raise ConfigError(f"slice_axes={tuple(slice_axes)!r} must be distinct axes among 2 (D), 3 (H) "
                          "and 4 (W) of a (B, C, D, H, W) volume, e.g. (2, 3, 4)")
    if not 0.0 < slice_fraction <= 1.0:
        raise ConfigError(f"slice_fraction={slice_fraction} must be in (0, 1]")
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction={reduction!r} is unknown; use 'mean' or 'none' (per image)")


def check_network_dims(spatial_dims: object, dims: int, description: str, networks_3d: str = ANY_3D_NETWORK
                       ) -> None:
    """Refuse ``spatial_dims`` other than 2 or 3, or one that does not match the network's ``dims``.

    Args:
        spatial_dims: the loss's option.
        dims: 2 or 3, the network's.
        description: the network, for the message.
        networks_3d: 3-D networks to suggest.

    Raises:
        ConfigError: naming the network and the setting that fits it.

    Examples:
        >>> check_network_dims(3, 3, "my 3-D network")
        >>> check_network_dims(2, 3, "my 3-D network")
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: my 3-D network is a 3-D network, which takes volumes whole; pass spatial_dims=3
    """
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims={spatial_dims!r} must be 2 (images; volumes slice by slice) or 3 "
                          "(volumes whole, on a 3-D network)")
    if spatial_dims == 3 and dims != 3:
        raise ConfigError(f"spatial_dims=3 passes volumes whole, but {description} is a 2-D network; use a 3-D "
                          f"network ({networks_3d}), or spatial_dims=2 to score volumes slice by slice")
    if spatial_dims == 2 and dims == 3:
        raise ConfigError(f"{description} is a 3-D network, which takes volumes whole; pass spatial_dims=3")


def check_volume_input(pred: torch.Tensor, loss: str, description: str) -> None:
    """Refuse anything but volumes (B, C, D, H, W) for a loss on a 3-D network.

    Raises:
        InputError: for 2-D images (or any other rank), naming the fix.

    Examples:
        >>> check_volume_input(torch.zeros(1, 1, 8, 8, 8), "TaskLoss", "my 3-D network")
        >>> check_volume_input(torch.zeros(1, 1, 8, 8), "TaskLoss", "my 3-D network")
        Traceback (most recent call last):
        ...
        taskloss.errors.InputError: TaskLoss(spatial_dims=3) passes volumes (B, C, D, H, W) whole to the 3-D network ...
    """
    if pred.ndim != 5:
        raise InputError(f"{loss}(spatial_dims=3) passes volumes (B, C, D, H, W) whole to the 3-D network "
                         f"{description}, got shape {tuple(pred.shape)}; pass volumes, or for 2-D images use "
                         f"spatial_dims=2 with a 2-D network")


def fixed_weights(terms: tuple[str, ...], layer_weights: LayerWeights, aliases: Mapping[str, str]) -> torch.Tensor:
    """The weight of each term (T,) from ``layer_weights`` (None, a sequence or a mapping).

    Raises:
        ConfigError: for an unknown string, a mapping naming no term, or a sequence of the wrong length.

    Examples:
        >>> fixed_weights(("pixel", "conv1_2", "conv2_2"), {"conv2_2": 0.5}, {})  # terms left out weigh 1
        tensor([1.0000, 1.0000, 0.5000])
        >>> fixed_weights(("pixel", "conv1_2"), {"relu1_2": 2.0}, {"relu1_2": "conv1_2"})  # another name of a term
        tensor([1., 2.])
    """
    if layer_weights is None:
        return torch.ones(len(terms))
    if isinstance(layer_weights, str):
        raise ConfigError(f"layer_weights={layer_weights!r} is unknown; use None, 'balance', a list "
                          "of numbers or a mapping layer -> weight")
    if isinstance(layer_weights, Mapping):
        values = {}
        for name, weight in layer_weights.items():
            canonical = aliases.get(name, name)
            if canonical not in terms:
                raise ConfigError(f"layer_weights names {name!r}, which is not a term of this loss; "
                                  f"its terms are {', '.join(terms)}")
            values[canonical] = float(weight)
        weights = [values.get(name, 1.0) for name in terms]
    else:
        weights = [float(w) for w in layer_weights]
        if len(weights) != len(terms):
            raise ConfigError(f"layer_weights has {len(weights)} values but the loss has "
                              f"{len(terms)} terms ({', '.join(terms)}); give one weight per term")
    return torch.tensor(weights)
