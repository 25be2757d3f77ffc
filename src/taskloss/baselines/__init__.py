"""Classical baselines of the CS-MRI study: zero-filled reconstruction and DLMRI.

Both take measured k-space (complex (B, 1, H, W), centred, orthonormal FFT convention of
:mod:`taskloss.data.kspace`) and a 0/1 mask, and return 2-channel (real, imaginary) images
(B, 2, H, W). :mod:`.sparse_coding` holds the batched OMP and K-SVD that DLMRI is built on.
"""

from taskloss.baselines.dlmri import DlmriConfig, dlmri, initial_dictionary
from taskloss.baselines.sparse_coding import ksvd, omp
from taskloss.baselines.zero_filled import check_measurements, zero_filled

__all__ = [
    "DlmriConfig",
    "check_measurements",
    "dlmri",
    "initial_dictionary",
    "ksvd",
    "omp",
    "zero_filled",
]
