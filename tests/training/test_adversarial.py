import shutil

import pytest
import torch
from torch import nn

from taskloss.losses import AdversarialLoss, CompositeLoss, feature_matching_loss, generator_loss
from taskloss.metrics import mae
from taskloss.training import Trainer, TrainingConfig
from taskloss.training.adversarial import AdversarialTask, FakePool, Generated, discriminator_accuracy
from taskloss.training.config import OptimizerConfig


def test_pool_fills_then_swaps_and_its_state_round_trips():
    pool = FakePool(size=3, probability=0.5, seed=1)
    first = torch.arange(3.0).reshape(3, 1, 1)
    assert torch.equal(pool.query(first), first)
    assert pool.images.shape == (3, 1, 1)
    new = torch.arange(100.0, 140.0).reshape(40, 1, 1)
    out = pool.query(new)
    swapped = out != new
    assert 10 < int(swapped.sum()) < 30  # about half come from the pool
    # Every returned image was either just passed or stored before: nothing is lost or invented.
    assert set(out.flatten().tolist()) <= set(new.flatten().tolist()) | {0.0, 1.0, 2.0}
    copy = FakePool(size=3, probability=0.5, seed=99)
    copy.load_state_dict(pool.state_dict())
    probe = torch.full((10, 1, 1), 5.0)
    assert torch.equal(copy.query(probe.clone()), pool.query(probe.clone()))
    assert torch.equal(copy.images, pool.images)


def test_pool_of_size_zero_passes_images_through_detached():
    images = torch.rand(2, 1, 4, 4, requires_grad=True)
    out = FakePool(size=0).query(images)
    assert torch.equal(out, images) and not out.requires_grad


class _Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = torch.nn.functional.leaky_relu(self.a(x), 0.2)
        return [features, self.b(features)]


def _dataset(n: int, offset: int) -> list[dict]:
    generator = torch.Generator().manual_seed(offset)
    return [{"input": torch.rand(1, 8, 8, generator=generator), "target": torch.rand(1, 8, 8, generator=generator)}
            for _ in range(n)]


def _task(joint_batch: bool = True, discriminator: type[nn.Module] = _Discriminator) -> AdversarialTask:
    def generate(model: nn.Module, batch: dict) -> Generated:
        update = model(batch["input"])
        return Generated(batch["input"] + update, {"update": update})

    def terms(generated: Generated, d_fake, d_real, batch) -> dict[str, torch.Tensor]:
        return {"adversarial": generator_loss(d_fake), "feature_matching": feature_matching_loss(d_fake, d_real),
                "vgg": (generated.image - batch["target"]).square().mean(),
                "penalty": generated.extras["update"].abs().mean()}

    return AdversarialTask(
        lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)),
        discriminator, generate, lambda image: image, lambda batch: batch["target"], terms,
        CompositeLoss.seitzer("first"), AdversarialLoss("bce", real_label=0.9),
        lambda image, batch: {"mae": mae(image, batch["target"])}, OptimizerConfig(lr=1e-3, betas=(0.5, 0.999)),
        pool_size=4, joint_batch=joint_batch)


def _config(epochs: int) -> TrainingConfig:
    return TrainingConfig(epochs=epochs, batch_size=2, accelerator="cpu", seed=1, monitor=None, progress=False,
                          log_every_steps=1, optimizer=OptimizerConfig(lr=1e-3, betas=(0.5, 0.999)))


def test_adversarial_training_resumes_exactly_and_first_batch_terms_start_at_their_weights(tmp_path):
    torch.set_num_threads(1)
    train, val = _dataset(6, 0), _dataset(2, 100)
    full = _task()
    Trainer(full, _config(3), tmp_path / "full").fit(train, val)
    part = _task()
    Trainer(part, _config(2), tmp_path / "part").fit(train, val)
    resumed = _task()
    shutil.copytree(tmp_path / "part", tmp_path / "resumed")
    result = Trainer(resumed, _config(3), tmp_path / "resumed").fit(train, val)
    assert result.steps == 9
    for name, value in full.generator.state_dict().items():
        assert torch.equal(resumed.generator.state_dict()[name], value), name
    for name, value in full.discriminator.state_dict().items():
        assert torch.equal(resumed.discriminator.state_dict()[name], value), name
    assert torch.equal(resumed.pool.images, full.pool.images)
    rows = (tmp_path / "full" / "train_log.csv").read_text().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    weighted = {name: float(first[header.index(f"{name}_weighted")]) for name in
                ("adversarial", "feature_matching", "vgg", "penalty")}
    assert weighted == {"adversarial": 0.5, "feature_matching": 0.5, "vgg": 1.0, "penalty": 0.1}
    best = torch.load(tmp_path / "full" / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["loop"]["epoch"] == 3  # monitor None: the last epoch is kept


def test_discriminator_accuracy_counts_right_decisions_over_every_logit():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]], [[[0.0, 1.0], [1.0, 1.0]]]])  # (2, 1, 2, 2)
    output = [torch.zeros(2, 3, 4, 4), logits]
    assert discriminator_accuracy(output, real=True).item() == 5 / 8  # logits > 0; 0 is not "real"
    assert discriminator_accuracy(output, real=False).item() == 2 / 8  # logits < 0
    assert discriminator_accuracy([output, [logits[:, :, :1]]], real=True).item() == pytest.approx(7 / 12)  # two scales


class _BatchNormDiscriminator(nn.Module):
    """One BN layer before a 1 x 1 map, as the last layers of a PatchGAN at 64 px."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 8), nn.BatchNorm2d(4), nn.LeakyReLU(0.2))
        self.logits = nn.Conv2d(4, 1, 1)
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.sizes.append(x.shape[0])
        features = self.features(x)
        return [features, self.logits(features)]


def test_joint_batch_lets_a_batch_norm_discriminator_see_a_shift_that_separate_passes_hide():
    torch.manual_seed(0)
    real = torch.rand(4, 1, 8, 8)
    fake = real + 0.5  # every fake differs from its real image by a constant
    for joint, separable in ((False, False), (True, True)):
        task = _task(joint_batch=joint, discriminator=_BatchNormDiscriminator)
        task.discriminator = _BatchNormDiscriminator()
        on_real, on_fake = task._discriminate(real, fake)
        # Separate passes normalise each class by its own statistics: the logits are identical.
        assert torch.allclose(on_real[-1], on_fake[-1], atol=1e-5) is not separable
        assert task.discriminator.sizes == ([8] if joint else [4, 4])


def test_training_log_records_discriminator_accuracy_on_real_and_fake(tmp_path):
    torch.set_num_threads(1)
    Trainer(_task(), _config(1), tmp_path / "run").fit(_dataset(4, 0), _dataset(2, 100))
    rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row in rows[1:]:
        values = row.split(",")
        for name in ("d_accuracy_real", "d_accuracy_fake"):
            # 8 x 8 images give 4 x 4 logits per image: accuracies are multiples of 1/32.
            value = float(values[header.index(name)])
            assert 0 <= value <= 1 and (value * 32) == round(value * 32)
