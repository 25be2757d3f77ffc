"""Evidence for docs/results.md (CS-MRI): DLMRI settings, the discriminator alone, real-MR generalisation.

Four experiments on the csmri data (64 px, simulated heads, single-threaded):

- ``dlmri``: PSNR/SSIM of zero-filled and DLMRI on test slices for one acceleration, mask and set
  of DLMRI options (JSON), with the PSNR after every outer iteration.
- ``discriminator``: train the refinement's PatchGAN (demo widths) *alone* to tell a trained
  RecNet's outputs from the ground truth (BCE, real label 0.9, Adam 2e-4, 5 real + 5 fake per
  step), in one joint forward pass or in two (one per class); prints its loss and accuracy, and its
  accuracy on the validation slices in evaluation mode.
- ``generalisation``: train the demo RecNet (or reuse a run folder) on simulated data with data
  overrides (JSON) and score it and zero-filled on the real MR images of the study's
  generalisation table (pydicom / pydicom-data), with the paired Wilcoxon test.
- ``refined``: a trained refinement run's own discriminator (its last weights, evaluation mode) on
  the run's validation slices: its accuracy on real images, on the refined images and on the
  RecNet images the refinement started from (0.5 is chance).

Run, e.g.::

    .venv/bin/python benchmarks/csmri_evidence.py dlmri --acceleration 4 \\
        --options '{"initial_error_threshold": 0.2, "error_threshold": 0.05}'
    .venv/bin/python benchmarks/csmri_evidence.py generalisation --run /tmp/recnet4 --data '{"acceleration": 4}'
    .venv/bin/python benchmarks/csmri_evidence.py discriminator --recnet /tmp/recnet4 --data '{"acceleration": 4}'
    .venv/bin/python benchmarks/csmri_evidence.py refined --run OUT/csmri/runs/refinement
"""

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from scipy.stats import wilcoxon
from torch.utils.data import DataLoader

from taskloss.baselines import DlmriConfig, dlmri
from taskloss.data.csmri import CsmriConfig, csmri_splits
from taskloss.data.fields import generator_for
from taskloss.data.kspace import complex_to_channels, magnitude, undersample
from taskloss.data.samples import real_mr_images
from taskloss.losses import AdversarialLoss
from taskloss.metrics import psnr, ssim
from taskloss.networks import create_network
from taskloss.studies.csmri import CSMRI_PRESETS, csmri_preset_runs, load_run, study_splits, train_run
from taskloss.training.adversarial import discriminator_accuracy

from common import machine


def _demo_data(overrides: dict[str, Any]) -> CsmriConfig:
    return CsmriConfig(**{**CSMRI_PRESETS["demo"].data, **overrides})


def _dlmri(args: argparse.Namespace) -> None:
    config = _demo_data({"acceleration": args.acceleration, "mask": args.mask})
    test = csmri_splits(config).test
    step = max(1, len(test) // args.images)
    items = [test[i] for i in range(0, len(test), step)][:args.images]
    batch = {k: torch.stack([item[k] for item in items]) for k in ("input", "kspace", "mask", "magnitude")}
    reference, zero = batch["magnitude"], magnitude(batch["input"])
    options = {**CSMRI_PRESETS["demo"].dlmri.model_dump(exclude_unset=True), "initial_error_threshold": None,
               "error_threshold": 0.023, **json.loads(args.options)}
    print(f"{len(items)} test slices, {int(batch['mask'][0, 0, 0].sum())} of {config.size} lines, DLMRI {options}")
    started = time.perf_counter()

    def report(iteration: int, image: torch.Tensor) -> None:
        value = psnr(magnitude(image), reference, data_range="target_max").mean().item()
        print(f"  iteration {iteration}: PSNR {value:.2f} dB ({time.perf_counter() - started:.0f} s)", flush=True)

    result = magnitude(dlmri(batch["kspace"], batch["mask"], DlmriConfig(**options), on_iteration=report))
    for name, image in (("zero-filled", zero), ("DLMRI", result)):
        print(f"{name}: PSNR {psnr(image, reference, data_range='target_max').mean().item():.2f} dB, "
              f"SSIM {ssim(image, reference, data_range='target_max').mean().item():.3f}")


def _trained_recnet(folder: Path, data: dict[str, Any], epochs: int | None) -> Any:
    if not (folder / "checkpoints" / "best.ckpt").is_file():
        training: dict[str, Any] = {"progress": False, "accelerator": "cpu"}
        if epochs is not None:
            training["epochs"] = epochs
        train_run(csmri_preset_runs(CSMRI_PRESETS["demo"], data, training)["recnet"], folder)
    return load_run(folder)[1]


def _discriminator(args: argparse.Namespace) -> None:
    data = json.loads(args.data)
    trainer = _trained_recnet(Path(args.recnet), data, None)
    splits = csmri_splits(_demo_data(data))
    reals, fakes = [], []
    with torch.no_grad():
        for batch in DataLoader(splits.train, batch_size=16):
            reals.append(batch["magnitude"])
            fakes.append(magnitude(trainer.task.predict(batch)))
        val = next(iter(DataLoader(splits.val, batch_size=64)))
        val_real, val_fake = val["magnitude"], magnitude(trainer.task.predict(val))
    real, fake = torch.cat(reals), torch.cat(fakes)
    torch.manual_seed(0)
    network = create_network("patch_discriminator", **{"widths": (32, 64, 128, 256, 256, 256),
                                                        **json.loads(args.options)})
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr, betas=(0.5, 0.999))
    criterion = AdversarialLoss("bce", real_label=0.9)
    for step in range(1, args.steps + 1):
        i, j = torch.randint(0, len(real), (5,)), torch.randint(0, len(real), (5,))
        if args.separate:
            on_real, on_fake = network(real[i]), network(fake[j])
        else:
            both = network(torch.cat([real[i], fake[j]]))
            on_real, on_fake = [x[:5] for x in both], [x[5:] for x in both]
        loss = criterion.discriminator(on_real, on_fake)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            network.eval()
            with torch.no_grad():
                held_real, held_fake = network(val_real), network(val_fake)
            network.train()
            print(f"step {step}: loss {loss.item():.3f}, accuracy real "
                  f"{discriminator_accuracy(on_real, True).item():.2f} fake "
                  f"{discriminator_accuracy(on_fake, False).item():.2f}; validation slices (evaluation "
                  f"mode) real {discriminator_accuracy(held_real, True).item():.2f} fake "
                  f"{discriminator_accuracy(held_fake, False).item():.2f}", flush=True)


def _generalisation(args: argparse.Namespace) -> None:
    data = json.loads(args.data)
    trainer = _trained_recnet(Path(args.run), data, args.epochs)
    config = _demo_data(data)
    truths, inputs, kspaces, masks, names = [], [], [], [], []
    for index, (name, image) in enumerate(real_mr_images().items()):
        resized = F.interpolate(torch.from_numpy(image)[None, None], size=(config.size,) * 2, mode="bilinear",
                                antialias=True, align_corners=False)
        truth = (resized / resized.amax()).to(torch.complex64)
        mask = config.make_mask(generator_for(config.seed, 0x6E4E, index))[None]  # as the study
        zero, kspace = undersample(truth, mask)
        truths.append(truth.abs().float())
        inputs.append(complex_to_channels(zero))
        kspaces.append(kspace)
        masks.append(mask)
        names.append(name)
    batch = {"input": torch.cat(inputs), "kspace": torch.cat(kspaces), "mask": torch.cat(masks),
             "magnitude": torch.cat(truths)}
    with torch.no_grad():
        estimate = magnitude(trainer.task.predict(batch))
    reference, zero = batch["magnitude"], magnitude(batch["input"])
    gains = (psnr(estimate, reference, data_range="target_max") - psnr(zero, reference, data_range="target_max"))
    print(f"{len(names)} real MR images: RecNet PSNR "
          f"{psnr(estimate, reference, data_range='target_max').mean().item():.2f} dB, zero-filled "
          f"{psnr(zero, reference, data_range='target_max').mean().item():.2f} dB; SSIM "
          f"{ssim(estimate, reference, data_range='target_max').mean().item():.3f} vs "
          f"{ssim(zero, reference, data_range='target_max').mean().item():.3f}")
    print(f"gain per image (dB): {[round(g, 2) for g in gains.tolist()]}; above zero-filled on "
          f"{int((gains > 0).sum())} of {len(names)}; Wilcoxon p = {wilcoxon(gains.numpy()).pvalue:.3g}")


def _refined(args: argparse.Namespace) -> None:
    """A trained refinement run's own discriminator on validation slices: the share of its patch
    decisions that are right on real images and on the refined images (and on the RecNet images the
    refinement started from), in evaluation mode (batch norm's running statistics) and as in
    training (batch norm in training mode over one joint batch of 16 real + 16 generated slices)."""
    run_dir = Path(args.run)
    run, trainer = load_run(run_dir)
    task = trainer.task
    recnet = load_run(run_dir.parent / str(run.recnet_run))[1].task
    loader = DataLoader(study_splits(run.data).val, batch_size=16, drop_last=True)
    # Training mode updates batch norm's running statistics: a copy takes those passes.
    discriminators = {"evaluation": task.discriminator.eval(), "training": copy.deepcopy(task.discriminator).train()}
    right: dict[str, float] = {}
    with torch.no_grad():
        for batch in loader:
            real = task.discriminator_input(task.real_image(batch))
            for name, image in (("refined", task.predict(batch)), ("RecNet", recnet.predict(batch))):
                fake = task.discriminator_input(image)
                for mode, discriminator in discriminators.items():
                    both = discriminator(torch.cat([real, fake]))
                    on_real, on_fake = ([x[: len(real)] for x in both], [x[len(real):] for x in both]) \
                        if isinstance(both, (list, tuple)) else (both[: len(real)], both[len(real):])
                    key = f"{mode}, {name}"
                    right[f"{key}: real"] = right.get(f"{key}: real", 0.0) + float(
                        discriminator_accuracy(on_real, True)) / len(loader)
                    right[f"{key}: fake"] = right.get(f"{key}: fake", 0.0) + float(
                        discriminator_accuracy(on_fake, False)) / len(loader)
    print(f"{run_dir}: {len(loader) * 16} validation slices; discriminator accuracy (every patch; 0.5 is chance):")
    for key in sorted({k.rsplit(":", 1)[0] for k in right}):
        real_acc, fake_acc = right[f"{key}: real"], right[f"{key}: fake"]
        print(f"  {key}: real {real_acc:.3f}, generated {fake_acc:.3f}, balanced {(real_acc + fake_acc) / 2:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dl = commands.add_parser("dlmri", help="DLMRI against zero-filled on demo test slices")
    dl.add_argument("--acceleration", type=float, default=8.0)
    dl.add_argument("--mask", default="cartesian-vd")
    dl.add_argument("--images", type=int, default=8)
    dl.add_argument("--options", default="{}", help="DLMRI options (JSON) over the demo preset's")
    di = commands.add_parser("discriminator", help="the PatchGAN alone: RecNet outputs vs ground truth")
    di.add_argument("--recnet", required=True, help="a demo RecNet run folder (trained if empty)")
    di.add_argument("--data", default="{}", help="data overrides (JSON)")
    di.add_argument("--options", default="{}", help="PatchDiscriminator options (JSON)")
    di.add_argument("--lr", type=float, default=2e-4)
    di.add_argument("--steps", type=int, default=200)
    di.add_argument("--separate", action="store_true", help="one forward pass per class")
    ge = commands.add_parser("generalisation", help="RecNet vs zero-filled on real MR images")
    ge.add_argument("--run", required=True, help="a demo RecNet run folder (trained if empty)")
    ge.add_argument("--data", default="{}", help="data overrides (JSON)")
    ge.add_argument("--epochs", type=int, default=None)
    rd = commands.add_parser("refined", help="a trained refinement run's discriminator on validation slices")
    rd.add_argument("--run", required=True, help="the run folder (e.g. OUT/csmri/runs/refinement)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    {"dlmri": _dlmri, "discriminator": _discriminator, "generalisation": _generalisation,
     "refined": _refined}[args.command](args)


if __name__ == "__main__":
    main()
