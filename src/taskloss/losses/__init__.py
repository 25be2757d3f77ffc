"""Losses of the source document as composable modules (and functions where natural).

- pixel: :class:`L1Loss`, :class:`MSELoss`, :class:`NMSELoss`, :class:`FrequencyMSELoss`,
  :class:`SSIMLoss`, :class:`MSSSIMLoss`, :class:`CrossEntropyLoss`;
- similarity: :class:`HaarPSILoss`, :class:`VSILoss` (``1 -`` the measure; no learned weights);
- perceptual: :class:`PerceptualLoss` (Chen & Koltun; VGG-19 offline, 2.5-D volumes, layer balancing);
- adversarial: :class:`AdversarialLoss` (bce, lsgan, hinge, wgan-gp) and :func:`gradient_penalty`;
- :class:`FeatureMatchingLoss` and :class:`OutputPenalty` (Seitzer et al.);
- learned: :class:`LPIPSLoss` (Zhang et al.) and :class:`DISTSLoss` (Ding et al.), the learned perceptual distances;
- :class:`CompositeLoss`: named terms, fixed or first-batch normalisation;
- task: :class:`TaskLoss`, the downstream task network (segmentation, classification) as the loss;
- frozen: :class:`FrozenNetworkLoss`, the base of both (frozen network, 2-D/2.5-D/3-D inputs, term weights).
- observer: :class:`ObserverLoss`, a model observer's d' of a signal in the outputs against the targets'.

Conventions and examples: ``docs/losses.md``.
"""

from taskloss.losses.adversarial import (
    CRITERIA,
    AdversarialLoss,
    discriminator_logits,
    discriminator_loss,
    discriminator_scales,
    generator_loss,
    gradient_penalty,
)
from taskloss.losses.composite import (
    SEITZER_FIRST_WEIGHTS,
    SEITZER_FIXED_WEIGHTS,
    CompositeLoss,
    CompositeOutput,
)
from taskloss.losses.feature_matching import FeatureMatchingLoss, feature_matching_loss
from taskloss.losses.frozen import FrozenNetworkLoss
from taskloss.losses.learned import DISTSLoss, LPIPSLoss
from taskloss.losses.observer import ObserverLoss
from taskloss.losses.penalty import OutputPenalty, output_penalty
from taskloss.losses.perceptual import (
    CRN_256_LAYER_WEIGHTS,
    CRN_LAYERS,
    PIXEL_TERM,
    PerceptualLoss,
)
from taskloss.losses.pixel import (
    CrossEntropyLoss,
    FrequencyMSELoss,
    L1Loss,
    MSELoss,
    MSSSIMLoss,
    NMSELoss,
    SSIMLoss,
    cross_entropy_loss,
    frequency_mse_loss,
    l1_loss,
    ms_ssim_loss,
    mse_loss,
    nmse_loss,
    ssim_loss,
)
from taskloss.losses.similarity import HaarPSILoss, VSILoss, haarpsi_loss, vsi_loss
from taskloss.losses.task import TaskLoss, load_task_network

__all__ = [
    "CRITERIA",
    "CRN_256_LAYER_WEIGHTS",
    "CRN_LAYERS",
    "PIXEL_TERM",
    "SEITZER_FIRST_WEIGHTS",
    "SEITZER_FIXED_WEIGHTS",
    "AdversarialLoss",
    "CompositeLoss",
    "CompositeOutput",
    "CrossEntropyLoss",
    "DISTSLoss",
    "FeatureMatchingLoss",
    "FrequencyMSELoss",
    "FrozenNetworkLoss",
    "HaarPSILoss",
    "L1Loss",
    "LPIPSLoss",
    "MSELoss",
    "MSSSIMLoss",
    "NMSELoss",
    "ObserverLoss",
    "OutputPenalty",
    "PerceptualLoss",
    "SSIMLoss",
    "TaskLoss",
    "VSILoss",
    "cross_entropy_loss",
    "discriminator_logits",
    "discriminator_loss",
    "discriminator_scales",
    "feature_matching_loss",
    "frequency_mse_loss",
    "generator_loss",
    "gradient_penalty",
    "haarpsi_loss",
    "l1_loss",
    "load_task_network",
    "ms_ssim_loss",
    "mse_loss",
    "nmse_loss",
    "output_penalty",
    "ssim_loss",
    "vsi_loss",
]
