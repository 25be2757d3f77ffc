"""Does a domain perception network move perceptual vs l1 on HFEN? A short mr2xray ablation.

Trains one network of the mr2xray demo preset (default the UNet, demo widths) on the demo data
(16 subjects x 8 views, 64 px; Adam 1e-3, batch 8, 30 epochs, the weights of the best validation
loss) with the l1 loss and with the perceptual loss (l1 pixel term plus the network's CRN-style
layers, each term balanced over the first 10 batches, as the study's perceptual runs) on each
given domain-network weights file, then prints per run the test-split means of MAE, SSIM, PSNR and
HFEN and the paired Wilcoxon test of each perceptual run's HFEN against l1's.
With ``--cache DIR`` every run's per-image test scores are saved (``DIR/<network>-<run>.csv``) and
reused when present (training is deterministic for a seed on one thread), so weights files can be
compared one at a time. Run:
``OMP_NUM_THREADS=1 python benchmarks/perception_ablation.py OLD.pt NEW.pt [--network UNet] [--cache DIR]``.
"""

import argparse
import copy
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from taskloss.data.mr2xray import Mr2XrayConfig, mr2xray_splits
from taskloss.features.domain import DOMAIN_LAYERS, DomainFeatures
from taskloss.losses import PerceptualLoss
from taskloss.metrics import hfen, mae, paired_wilcoxon, psnr, ssim
from taskloss.networks.factory import create_network
from taskloss.studies.mr2xray import MR2XRAY_PRESETS

from common import machine


def stack(dataset: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([i["input"] for i in items]), torch.stack([i["target"] for i in items])


def train(name: str, loss: torch.nn.Module, data: dict[str, tuple[torch.Tensor, torch.Tensor]],
          network: str, epochs: int, seed: int) -> torch.nn.Module:
    """Adam 1e-3, batch 8; returns the model of the best validation loss."""
    torch.manual_seed(seed)
    preset_network = MR2XRAY_PRESETS["demo"].networks[network]
    model = create_network(preset_network.name, **preset_network.options)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = data["train"]
    generator = torch.Generator().manual_seed(seed)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        for index in torch.randperm(len(inputs), generator=generator).split(8):
            optimizer.zero_grad(set_to_none=True)
            loss(model(inputs[index]), targets[index]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            value = float(F.l1_loss(model(data["val"][0]), data["val"][1]))
        if value < best:
            best, best_state = value, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="*", help="domain-network weights files")
    parser.add_argument("--network", default="UNet", choices=sorted(MR2XRAY_PRESETS["demo"].networks))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="folder of per-run score files")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    splits = mr2xray_splits(Mr2XrayConfig(**MR2XRAY_PRESETS["demo"].data))
    data = {"train": stack(splits.train), "val": stack(splits.val), "test": stack(splits.test)}
    losses: dict[str, object] = {"l1": torch.nn.L1Loss}
    for path in args.weights:
        losses[f"perceptual ({path.name})"] = lambda path=path: PerceptualLoss(
            layers=DOMAIN_LAYERS, layer_weights="balance", include_pixel=True, network=DomainFeatures(path),
            balance_batches=10)
    scores = {}
    for name, make_loss in losses.items():
        start = time.perf_counter()
        cached = None if args.cache is None else args.cache / f"{args.network}-{name}.csv".replace(" ", "_")
        if cached is not None and cached.is_file():
            with cached.open() as file:
                rows = list(csv.DictReader(file))
            scores[name] = {k: torch.tensor([float(r[k]) for r in rows]) for k in rows[0]}
        else:
            model = train(name, make_loss(), data, args.network, args.epochs, args.seed)
            with torch.no_grad():
                pred = model(data["test"][0]).clamp(0, 1)
            target = data["test"][1]
            scores[name] = {"mae": mae(pred, target), "ssim": ssim(pred, target, data_range=1.0),
                            "psnr": psnr(pred, target, data_range=1.0), "hfen": hfen(pred, target)}
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                with cached.open("w", newline="") as file:
                    writer = csv.writer(file)
                    writer.writerow(list(scores[name]))
                    writer.writerows(zip(*(v.tolist() for v in scores[name].values()), strict=True))
        means = ", ".join(f"{k} {float(v.mean()):.4f}" for k, v in scores[name].items())
        print(f"{args.network} {name}: {means} ({time.perf_counter() - start:.0f} s)")
    for name in list(scores)[1:]:
        test = paired_wilcoxon(scores[name]["hfen"].numpy(), scores["l1"]["hfen"].numpy())
        print(f"{args.network} {name} vs l1, HFEN: median difference {test.median_difference:+.4f}, "
              f"p = {test.p_value:.3g} (n = {test.n})")


if __name__ == "__main__":
    main()
