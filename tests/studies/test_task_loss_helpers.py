"""The studies' task-loss helpers: dice_ratio (SIS with a bootstrap CI), a trained run's segmenter."""

import numpy as np
import pytest
import torch
import yaml

from taskloss.errors import ConfigError
from taskloss.losses import TaskLoss
from taskloss.networks import create_network
from taskloss.studies.segmentation import SegmentationRun, load_segmentation
from taskloss.studies.task_loss import dice_ratio, with_task_term


def test_dice_ratio_is_the_ratio_of_means_with_a_ci_around_it():
    method = np.array([0.5, 0.6, np.nan, 0.7, 0.8])
    real = np.array([0.8, 0.9, 0.9, 0.7, 1.0])
    result = dice_ratio(method, real)
    assert result is not None and result.n == 4
    assert result.mean == pytest.approx((0.5 + 0.6 + 0.7 + 0.8) / (0.8 + 0.9 + 0.7 + 1.0))
    assert result.ci_low < result.mean < result.ci_high
    assert dice_ratio(np.array([0.5]), np.array([0.0])) is None
    assert dice_ratio(np.array([np.nan]), np.array([0.5])) is None
    same = dice_ratio(np.array([0.4, 0.6]), np.array([0.4, 0.6]))
    assert same is not None and same.mean == same.ci_low == same.ci_high == 1.0


def _segmenter():
    torch.manual_seed(0)
    return create_network("segmentation_unet", widths=(4, 8))


def test_a_run_folders_segmenter_is_its_best_weights_in_eval_mode(tmp_path):
    network = _segmenter()
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    expected = float(TaskLoss(network)(pred, target))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = SegmentationRun(data={"path": "pairs"}, network="segmentation_unet", options={"widths": [4, 8]},
                             classes=2, training={"epochs": 1})
    (run / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    torch.save({"task": {"model": network.state_dict()}}, run / "checkpoints" / "best.ckpt")
    from_run = TaskLoss(load_segmentation(run))
    assert float(from_run(pred, target)) == pytest.approx(expected, rel=1e-6)
    assert not load_segmentation(run).training
    with pytest.raises(ConfigError, match=r"holds no finished segmentation run"):
        load_segmentation(tmp_path)


def test_with_task_term_balances_both_terms_over_the_first_batches():
    network = _segmenter()
    loss = TaskLoss(network)
    criterion = with_task_term(torch.nn.L1Loss(), "l1", loss, weight=2.0, balance_batches=1)
    criterion.train()
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert float(criterion(pred, target)) == pytest.approx(1.0 + 2.0, rel=1e-5)  # each term / itself
    other = torch.rand(2, 1, 16, 16)
    expected = (float(torch.nn.L1Loss()(other, target)) / float(torch.nn.L1Loss()(pred, target))
                + 2.0 * float(loss(other, target)) / float(loss(pred, target)))
    assert float(criterion(other, target)) == pytest.approx(expected, rel=1e-5)
