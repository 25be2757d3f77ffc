"""Task loss: the downstream task network itself (segmentation or classification) as the loss.

A perceptual loss borrows a network trained for another task; :class:`TaskLoss` uses the network
of the task the images are made for, e.g. the lesion-segmentation network a reader's software runs
on the reconstruction. Value per image, a weighted sum of terms ``sum_t lambda_t * D_t``:

- one feature term per name in ``layers`` (modules of ``network.named_modules()``): the mean
  absolute difference of that module's output on ``pred`` and on ``target``, over every element;
- one output term (``output``), on the network's logits ``z`` (B, K, H, W) or (B, K):

  - ``"kl"``: task consistency, no labels needed: ``KL(softmax z(target) || softmax z(pred))``
    summed over the K classes, averaged over pixels (and, with reduction "mean", over the batch);
  - ``"ce"``: cross-entropy of ``z(pred)`` against integer ``labels``, per image the mean over
    pixels (the class-weighted mean with ``class_weights``), as
    :func:`taskloss.losses.cross_entropy_loss`;
  - ``"dice"``: soft Dice loss against ``labels``: ``1 - mean_k (2 sum p_k y_k + eps) /
    (sum p_k + sum y_k + eps)`` with ``p = softmax z(pred)``, ``y`` the one-hot labels, sums over
    the pixels of each image, ``eps = 1e-5``, the mean over ``dice_classes`` (by default every
    class but 0, the background);
  - ``None``: feature terms only.

Feature activations are captured with forward hooks that live only for the duration of one
network call (removed even when the call fails). The target branch runs under ``torch.no_grad()``.
What the loss shares with :class:`~taskloss.losses.PerceptualLoss` is their base's,
:class:`~taskloss.losses.FrozenNetworkLoss`: the network is frozen (parameters without grad) and in
eval mode, which ``train()`` keeps; it is not a submodule (its weights are not in ``parameters()``
or ``state_dict()``) but ``.to()``, ``.cuda()`` and ``.half()`` move it along; volumes
(B, C, D, H, W) are scored 2.5-D, slice by slice along ``slice_axes`` (``spatial_dims=2``, the
default, for a 2-D task network), or with ``spatial_dims=3`` pass whole to a 3-D task network (e.g.
``create_network("segmentation_unet", spatial_dims=3)``), which returns logits (B, K, D, H, W) or
(B, K), and 2-D images are refused.

The network is given as a module or as a file: a TorchScript archive (``torch.jit.save``), or a
state dict (``torch.save(model.state_dict(), path)``) together with ``factory``, a callable that
builds the untrained module. Feature terms need hooks, which TorchScript's compiled submodule calls
do not run: with a TorchScript network use ``layers=()``.
"""

import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from taskloss.errors import ConfigError, InputError
from taskloss.losses.frozen import FrozenNetworkLoss, LayerWeights, Reduction, SpatialDims, check_frozen_options
from taskloss.losses.pixel import cross_entropy_loss
from taskloss.losses.precision import full_precision
from taskloss.validation import check_class_indices, check_image_pair

Output: TypeAlias = Literal["kl", "ce", "dice"] | None
OUTPUTS = ("kl", "ce", "dice", None)
DICE_EPS = 1e-5
"""Smoothing of the soft Dice ratio (numerator and denominator), so absent classes give Dice 1."""


NETWORKS_3D = "e.g. create_network('segmentation_unet', spatial_dims=3), or a module with spatial_dims = 3"
"""The 3-D task networks a refused ``spatial_dims=3`` suggests."""

RANGE_ADVICE = ("pass the range the task network was trained on, e.g. "
                "input_range=({low:.4g}, {high:.4g}), or scale the images to it")
"""The fix an out-of-range target is told (see :func:`taskloss.validation.check_declared_range`)."""


class TaskLoss(FrozenNetworkLoss):
    """The loss a frozen task network sees between predictions and targets (see the module docstring).

    Args:
        network: the task network, an ``nn.Module`` mapping images (N, C, H, W) to logits
            (N, K, H, W) (segmentation) or (N, K) (classification), or the path of its file
            (TorchScript, or a state dict with ``factory``). A given module is frozen and put in
            eval mode in place.
        layers: names of ``network.named_modules()`` whose outputs give feature terms (L1).
        output: "kl", "ce", "dice" or None (no output term).
        layer_weights: lambda per term: None (all 1), a sequence (one per term: ``layers`` in the
            given order, then the output term), a mapping term name -> weight (the output term is
            named by ``output``; terms left out weigh 1), or "balance": each term divided by its
            mean over the first ``balance_batches`` training batches (see
            :class:`~taskloss.losses.balance.TermNormalizer`).
        input_range: (low, high) of the images the network takes (after ``preprocess``); targets
            outside it by more than 10 % of its width raise an error (a wrong scale).
        factory: for a state-dict file: builds the untrained network (e.g.
            ``lambda: taskloss.networks.create_network("segmentation_unet")``).
        preprocess: optional differentiable map applied to ``pred`` and ``target`` before the
            network (e.g. the magnitude of 2-channel complex images); None feeds them as they are.
        class_weights: for "ce": a weight per class (K,).
        dice_classes: for "dice": the classes averaged; None means 1 .. K-1 (all when K = 1).
        description: how reports name the network (default: its class and file).
        balance_batches: K of the "balance" rule.
        spatial_dims: 2 (a 2-D network; volumes are scored slice by slice) or 3 (a 3-D network;
            volumes (B, C, D, H, W) pass whole, logits (B, K, D, H, W) or (B, K); images are refused).
            A network with a ``spatial_dims`` attribute (taskloss's U-Nets) must agree with it.
        slice_axes: for volumes with ``spatial_dims=2``: the axes sliced into 2-D images (2: D, 3: H, 4: W).
        slice_fraction: for ``spatial_dims=2``, in training mode, the fraction of slices drawn at random
            per axis and call.
        reduction: "mean" (scalar, the mean over the batch) or "none" (shape (B,)).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from taskloss.losses import TaskLoss
        >>> segmenter = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
        >>> loss = TaskLoss(segmenter, layers=("1",), output="kl")
        >>> pred = torch.rand(2, 1, 16, 16, requires_grad=True)
        >>> value = loss(pred, torch.rand(2, 1, 16, 16))
        >>> value.backward()
        >>> loss.terms, value.ndim, pred.grad is not None, len(list(loss.parameters()))
        (('1', 'kl'), 0, True, 0)
    """

    range_advice = RANGE_ADVICE

    def __init__(
        self,
        network: nn.Module | str | os.PathLike[str],
        layers: Sequence[str] = (),
        output: Output = "kl",
        layer_weights: LayerWeights = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        *,
        factory: Callable[[], nn.Module] | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        class_weights: Sequence[float] | None = None,
        dice_classes: Sequence[int] | None = None,
        description: str | None = None,
        balance_batches: int = 20,
        spatial_dims: SpatialDims = 2,
        slice_axes: Sequence[int] = (2, 3, 4),
        slice_fraction: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        check_frozen_options(input_range, slice_axes, slice_fraction, reduction)  # before any file is read
        _check_task_options(layers, output, class_weights, dice_classes)
        module, source = _load_network(network, factory)
        declared = getattr(module, "spatial_dims", None)
        super().__init__(module, network_dims=None if declared is None else int(declared),
                         description=description or f"{type(module).__name__}{source}", input_range=input_range,
                         spatial_dims=spatial_dims, slice_axes=slice_axes, slice_fraction=slice_fraction,
                         reduction=reduction, networks_3d=NETWORKS_3D)
        self.layers = _unique(layers)
        self._hooked = _find_modules(module, self.layers)
        self.output = output
        self.preprocess = preprocess
        self.dice_classes = None if dice_classes is None else tuple(int(k) for k in dice_classes)
        weights = None if class_weights is None else torch.tensor([float(w) for w in class_weights])
        self.register_buffer("class_weights", weights, persistent=False)
        self._set_terms(self.layers + ((output,) if output is not None else ()), layer_weights, balance_batches)

    @property
    def description(self) -> str:
        """One line for reports: terms, weighting and the task network."""
        if self.normalizer is not None:
            weighting = f"balanced over the first {self.normalizer.batches} batches"
        else:
            weights = ", ".join(f"{name}={float(w):g}" for name, w in zip(self.terms, self.term_weights, strict=True))
            weighting = f"weights {weights}"
        return f"task loss ({', '.join(self.terms)}; {weighting}) on {self.network_description}"

    def forward(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        """The loss of ``pred`` against ``target``.

        Args:
            pred: images (B, C, H, W) or volumes (B, C, D, H, W); gradients flow to it.
            target: references of the same shape (no gradient is computed for them).
            labels: for "ce" and "dice": class indices, int64, (B, H, W) or (B, 1, H, W) for
                segmentation (volumes: (B, D, H, W) or (B, 1, D, H, W)), (B,) for classification.

        Returns:
            Scalar (reduction "mean") or shape (B,) (reduction "none").
        """
        return self._finish(self._weighted_sum(self._raw_terms(pred, target, labels)), pred, target)

    def term_values(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                    ) -> dict[str, torch.Tensor]:
        """Each term's unweighted value, averaged over the batch, detached (for logging)."""
        with torch.no_grad():
            raw = self._raw_terms(pred, target, labels)
        return self._named(raw)

    def _raw_terms(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        pred, target = check_image_pair(pred, target, finite=False)
        labels = self._check_labels(labels, pred)
        if labels is not None and labels.ndim == 1 and pred.ndim == 5 and self.spatial_dims == 2:
            raise InputError("volumes need one label map per volume (B, D, H, W), got one label per "
                             "volume; classification networks take 2-D images")
        return self._all_terms(pred, target.detach(), labels)

    def _check_labels(self, labels: object, pred: torch.Tensor) -> torch.Tensor | None:
        if self.output not in ("ce", "dice"):
            if labels is not None:
                raise InputError(f"labels were given but output={self.output!r} does not use them; "
                                 "use output='ce' or 'dice' to train against labels, or drop labels")
            return None
        if labels is None:
            raise InputError(f"output={self.output!r} needs labels: call loss(pred, target, labels=labels) "
                             "with int64 class indices, or use output='kl' (no labels)")
        labels = check_class_indices(labels)
        if labels.ndim == pred.ndim and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape not in ((pred.shape[0],), (pred.shape[0], *pred.shape[2:])):
            raise InputError(f"labels have shape {tuple(labels.shape)} but pred {tuple(pred.shape)}; pass "
                             f"{(pred.shape[0], *pred.shape[2:])} for segmentation or ({pred.shape[0]},) "
                             "for classification")
        return labels.to(pred.device)

    def _image_terms(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Per-item terms (N, T) of inputs the network takes whole (2-D images, or volumes in 3-D)."""
        if self.preprocess is not None:
            pred, target = self.preprocess(pred), self.preprocess(target)
        self._check_target_range(target)
        pred_logits, pred_features = self._run(pred)
        with torch.no_grad():
            target_logits, target_features = self._run(target)
        terms = [_mean_abs(pred_features[name], target_features[name]) for name in self.layers]
        if self.output is not None:
            terms.append(self._output_term(pred_logits, target_logits, labels, pred.shape[2:]))
        return torch.stack(terms, dim=1)

    def _run(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The network's logits on ``images`` and the outputs of ``layers``, captured by hooks."""
        captured: dict[str, torch.Tensor] = {}
        handles: list[RemovableHandle] = []
        try:
            for name, module in self._hooked.items():
                handles.append(module.register_forward_hook(_capture(captured, name)))
            logits = self.network(images)
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.layers if name not in captured]
        if missing:
            raise InputError(f"layer {missing[0]!r} of {self.network_description} gave no tensor output in the "
                             "forward pass (not called, or a tuple output); choose another layer")
        return logits, captured

    def _output_term(self, pred_logits: torch.Tensor, target_logits: torch.Tensor,
                     labels: torch.Tensor | None, size: torch.Size) -> torch.Tensor:
        """The output term per item (N,) from logits (N, K, *size) or (N, K)."""
        _check_logits(pred_logits, size, self.network_description)
        pred_logits, target_logits = full_precision(pred_logits), full_precision(target_logits)
        if pred_logits.ndim == 2:  # classification: one "pixel" per image
            pred_logits, target_logits = pred_logits[..., None, None], target_logits[..., None, None]
        if self.output == "kl":
            target_log_p = F.log_softmax(target_logits, dim=1)
            kl = (target_log_p.exp() * (target_log_p - F.log_softmax(pred_logits, dim=1))).sum(dim=1)
            return kl.flatten(1).mean(dim=1)
        assert labels is not None  # checked in forward
        if labels.ndim == 1:
            if self.output == "dice":
                raise InputError(f"output='dice' needs segmentation logits (N, K, H, W), but "
                                 f"{self.network_description} gives class scores (N, K); use output='ce'")
            labels = labels[:, None, None]
        if self.output == "ce":
            return cross_entropy_loss(pred_logits, labels, class_weights=self.class_weights, reduction="none")
        return self._soft_dice_loss(pred_logits, labels)

    def _soft_dice_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes = logits.shape[1]
        if int(labels.min()) < 0 or int(labels.max()) >= classes:
            raise InputError(f"labels hold values in [{int(labels.min())}, {int(labels.max())}] but the "
                             f"network gives {classes} classes; labels must be in [0, {classes - 1}]")
        chosen = self.dice_classes if self.dice_classes is not None else tuple(range(1 if classes > 1 else 0, classes))
        if max(chosen) >= classes:
            raise InputError(f"dice_classes={chosen} but the network gives {classes} classes; choose classes "
                             f"in [0, {classes - 1}]")
        probabilities = F.softmax(logits, dim=1)[:, chosen].flatten(2)
        one_hot = F.one_hot(labels, classes).movedim(-1, 1)[:, chosen].flatten(2).to(probabilities.dtype)
        overlap = (probabilities * one_hot).sum(dim=2)
        size = probabilities.sum(dim=2) + one_hot.sum(dim=2)
        return 1.0 - ((2.0 * overlap + DICE_EPS) / (size + DICE_EPS)).mean(dim=1)


def load_task_network(path: str | os.PathLike[str], factory: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A task network from a file: a TorchScript archive, or a state dict loaded into ``factory()``.

    Raises:
        ConfigError: when the file is missing, is a state dict but no ``factory`` is given, or
            does not fit the factory's network (the message lists the first mismatching keys).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> factory = lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
        >>> network = factory()
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     torch.save(network.state_dict(), Path(folder) / "segmenter.pt")
        ...     loaded = load_task_network(Path(folder) / "segmenter.pt", factory=factory)
        >>> torch.equal(loaded[0].weight, network[0].weight)
        True
    """
    return _load_network(path, factory)[0]


def _load_network(network: object, factory: Callable[[], nn.Module] | None) -> tuple[nn.Module, str]:
    """The module and a suffix naming its file for the description."""
    if isinstance(network, nn.Module):
        if factory is not None:
            raise ConfigError("factory builds a network from a state-dict file; it cannot be combined with a "
                              "network module: pass the module alone, or its file path with factory")
        return network, ""
    if not isinstance(network, str | os.PathLike):
        raise ConfigError(f"network must be an nn.Module or a file path, got {type(network).__name__}")
    path = Path(network)
    if not path.is_file():
        raise ConfigError(f"task network file {path} does not exist; pass the path of a TorchScript file "
                          "(torch.jit.save) or of a state dict (torch.save(model.state_dict(), path)) with factory")
    if _is_torchscript(path):
        if factory is not None:
            raise ConfigError(f"{path} is a TorchScript file, which holds its own network; drop factory")
        return torch.jit.load(str(path), map_location="cpu"), f" (TorchScript {path.name})"
    state = torch.load(path, map_location="cpu", weights_only=True)
    if factory is None:
        raise ConfigError(f"{path} holds a state dict, not a network; pass factory, a callable that builds "
                          "the untrained network (e.g. lambda: create_network('segmentation_unet')), or save "
                          "the network with torch.jit.save")
    module = factory()
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path} holds a {type(state).__name__}, not a state dict; save it with "
                          "torch.save(model.state_dict(), path)")
    missing, unexpected = _key_mismatch(module, state)
    if missing or unexpected:
        raise ConfigError(f"{path} does not fit {type(module).__name__} built by factory: missing keys "
                          f"{missing[:3]}, unexpected keys {unexpected[:3]}; pass the factory of the network "
                          "that was saved, with the same options")
    module.load_state_dict(state)
    return module, f" (weights {path.name})"


def _key_mismatch(module: nn.Module, state: Mapping[str, object]) -> tuple[list[str], list[str]]:
    expected = set(module.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive: a zip holding ``constants.pkl`` (torch.save zips do not)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())


def _check_task_options(layers: Sequence[str], output: object, class_weights: object, dice_classes: object
                        ) -> None:
    if isinstance(layers, str):
        raise ConfigError(f"layers must be a list of module names, got the string {layers!r}; write "
                          f"layers=[{layers!r}]")
    if output not in OUTPUTS:
        raise ConfigError(f"output={output!r} is unknown; use 'kl' (consistency with the target's "
                          "prediction), 'ce' or 'dice' (against labels), or None (feature terms only)")
    if output is None and not layers:
        raise ConfigError("output=None and no layers leave the task loss without terms; name layers of the "
                          "network or choose output='kl', 'ce' or 'dice'")
    if class_weights is not None and output != "ce":
        raise ConfigError(f"class_weights apply to output='ce' only, not output={output!r}")
    if dice_classes is not None and (output != "dice" or not dice_classes):
        raise ConfigError("dice_classes must be a non-empty list of classes and applies to output='dice' only")


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(name) for name in names))


def _find_modules(network: nn.Module, layers: tuple[str, ...]) -> dict[str, nn.Module]:
    if layers and isinstance(network, torch.jit.ScriptModule):
        raise ConfigError(f"layers {list(layers)} need forward hooks, which TorchScript networks do not run; use "
                          "layers=() with a TorchScript file, or pass the network as a module")
    modules = dict(network.named_modules())
    for name in layers:
        if name not in modules or name == "":
            valid = [n for n in modules if n]
            raise InputError(f"layer {name!r} is not a module of the task network {type(network).__name__}; "
                             f"choose from {', '.join(valid)}")
    return {name: modules[name] for name in layers}


def _capture(store: dict[str, torch.Tensor], name: str) -> Callable[[nn.Module, object, object], None]:
    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            store[name] = output
    return hook


def _check_logits(logits: object, size: torch.Size, where: str) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        found = type(logits).__name__ if not isinstance(logits, torch.Tensor) else str(logits.dtype)
        raise InputError(f"{where} returned {found}, not float logits; the task network must return "
                         "logits (N, K, H, W) or (N, K)")
    if not (logits.ndim == 2 or (logits.ndim == len(size) + 2 and logits.shape[2:] == size)):
        kind = "images" if len(size) == 2 else "volumes"
        raise InputError(f"{where} returned shape {tuple(logits.shape)} for {kind} of size {tuple(size)}; "
                         f"the task network must return logits (N, K, {', '.join(map(str, size))}) or (N, K)")


def _mean_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image (N,), in float32 at least (see :mod:`.precision`)."""
    return (full_precision(a) - full_precision(b)).abs().flatten(1).mean(dim=1)
