"""data_range per volume: fastMRI's evaluation formulas worked in numpy on MNI152 slices."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from taskloss.data.samples import mni_slice
from taskloss.errors import InputError
from taskloss.metrics import per_volume_max, psnr, ssim


def _fastmri_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    """fastmri/evaluate.py ssim(): the volume's maximum, mean of skimage's per-slice defaults."""
    maxval = gt.max()
    return float(np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred, strict=True)]))


def _fastmri_psnr(gt: np.ndarray, pred: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(gt, pred, data_range=gt.max()))


@pytest.fixture(scope="module")
def volumes() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two 'volumes' of 3 real slices each; their slice maxima differ, so per-slice and per-volume differ."""
    rng = np.random.default_rng(0)
    out = []
    for scale, indices in ((1.0, (40, 45, 50)), (3.0, (30, 35, 38))):
        gt = np.stack([scale * (0.3 + 0.7 * i / 50) * mni_slice(axis=2, index=i, resolution=2) for i in indices])
        out.append((gt.astype(np.float64), gt + rng.normal(0, 0.03 * scale, gt.shape)))
    return out


def test_reproduces_fastmri_volume_scores(volumes):
    gt = torch.from_numpy(np.concatenate([g for g, _ in volumes]))[:, None]
    pred = torch.from_numpy(np.concatenate([p for _, p in volumes]))[:, None]
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    peak = per_volume_max(gt, ids)
    per_slice = ssim(pred, gt, data_range=peak, convention="fastmri")
    for v, (g, p) in enumerate(volumes):
        expected = _fastmri_ssim(g, p)
        assert per_slice[3 * v : 3 * v + 3].mean().item() == pytest.approx(expected, abs=1e-10)
        # the batch item's own maximum ("target_max" on slices) does not give fastMRI's number
        own = ssim(pred[3 * v : 3 * v + 3], gt[3 * v : 3 * v + 3], data_range="target_max", convention="fastmri")
        assert abs(own.mean().item() - expected) > 1e-4
        # PSNR: the volume as one batch item (B, C, D, H, W) with "target_max" is fastMRI's
        volume_psnr = psnr(torch.from_numpy(p)[None, None], torch.from_numpy(g)[None, None], data_range="target_max")
        assert volume_psnr.item() == pytest.approx(_fastmri_psnr(g, p), abs=1e-9)


def test_ids_need_not_be_adjacent_and_bad_ids_are_refused():
    target = torch.tensor([1.0, 7.0, 2.0, 5.0]).reshape(4, 1, 1, 1)
    torch.testing.assert_close(per_volume_max(target, torch.tensor([9, 4, 9, 4])), torch.tensor([2.0, 7.0, 2.0, 7.0]))
    with pytest.raises(InputError) as error:
        per_volume_max(target, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert str(error.value) == ("volume must be an int64 tensor of shape (4,), one volume id per target image, got "
                                "torch.float32 of shape (4,); e.g. torch.tensor([0, 0, 1, 1]) for two volumes of two "
                                "slices")
    with pytest.raises(InputError, match=r"got list"):
        per_volume_max(target, [0, 0, 1, 1])
