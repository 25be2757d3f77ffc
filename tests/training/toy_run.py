"""A tiny but real training run, used by the engine tests in this and in child processes.

Usage: python toy_run.py RUN_DIR [--devices N] [--batch B] [--epochs E] [--delay S] [--dropout P]
Writes RUN_DIR/final.pt (model weights and validation history) when the run finishes.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from taskloss.metrics import mae, psnr
from taskloss.training import SupervisedTask, Trainer, TrainingConfig
from taskloss.training.config import OptimizerConfig


class ToyImages(Dataset):
    """Noisy smooth images -> clean images, deterministic per index (and epoch, for noise)."""

    def __init__(self, n: int, offset: int, delay: float = 0.0) -> None:
        self.n, self.offset, self.delay, self.epoch = n, offset, delay, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        time.sleep(self.delay)
        generator = torch.Generator().manual_seed(self.offset + index)
        clean = F.avg_pool2d(torch.rand(1, 1, 20, 20, generator=generator), 5, 1, 2)[0]
        noise_generator = torch.Generator().manual_seed(10_000 * (self.epoch + 1) + self.offset + index)
        noisy = clean + 0.1 * torch.randn(clean.shape, generator=noise_generator)
        return {"input": noisy, "target": clean, "id": f"toy-{self.offset + index}"}


def make_model(dropout: float = 0.1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Dropout(dropout), nn.ReLU(),
                         nn.Conv2d(8, 1, 3, padding=1))


def metrics(pred: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
    return {"mae": mae(pred, batch["target"]), "psnr": psnr(pred, batch["target"], data_range=1.0)}


def run(run_dir: Path, devices: int = 1, batch: int = 4, epochs: int = 3, delay: float = 0.0,
        checkpoint_every: int | None = 1, dropout: float = 0.1):
    config = TrainingConfig(epochs=epochs, batch_size=batch, devices=devices, accelerator="cpu", seed=3,
                            checkpoint_every_steps=checkpoint_every, log_every_steps=1, monitor="mae",
                            progress=False, optimizer=OptimizerConfig(lr=1e-2))
    task = SupervisedTask(lambda: make_model(dropout), nn.L1Loss(), metrics)
    trainer = Trainer(task, config, run_dir)
    result = trainer.fit(ToyImages(24, 0, delay), ToyImages(6, 1000))
    if trainer.fabric.is_global_zero:
        torch.save({"weights": task.model.state_dict(), "history": result.history, "steps": result.steps},
                   run_dir / "final.pt")
    return result, task


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--dropout", type=float, default=0.1, help="0 to compare DDP with one process")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run(args.run_dir, args.devices, args.batch, args.epochs, args.delay, dropout=args.dropout)
