"""Perceptual-loss training step (forward + backward) against its lower bound and a naive version.

For a batch of grayscale images (Shepp-Logan and MNI152 slices, prediction = target + noise) at
each size, with VGG-19 and Chen & Koltun's layers (conv1_2 ... conv5_2, L1), it times one step
``loss(pred, target).backward()`` of:

- taskloss's :class:`~taskloss.losses.PerceptualLoss`;
- the lower bound: the truncated network (up to conv5_2) on already prepared inputs, forward with
  gradient on the prediction, forward without gradient on the target, the five L1 means, backward;
- a straightforward implementation: the whole VGG-19 feature stack on both images, weights left
  trainable (as when the network is not frozen), so both branches are kept in the graph;
- MONAI's ``PerceptualLoss`` and piq's ``ContentLoss`` where they can run (they need torchvision
  and downloaded weights; the script says why when they cannot).

The implementations are interleaved, one step each per round in a rotating order, after one
warm-up round; the median wall time and the median CPU time of this process (all its threads) are
reported with their ratios. Rounds are few (a step at 256 px takes seconds on 2 CPU cores), and
on a machine shared with other jobs the wall times vary by tens of per cent between runs; the CPU
times are steadier. Peak memory is the growth of the process's resident set during one step,
measured in a child process in which glibc returns every freed block of 64 KB or more to the
system (so the resident set follows the live tensors). Weights are random (seeded): the
arithmetic, and so the time, is the same as with ImageNet weights.

Run: ``.venv/bin/python benchmarks/losses.py [--sizes 64 128 256] [--batch 8] [--rounds 5] [--threads N]``.
"""

import argparse
import copy
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from skimage.transform import resize
from torch import nn

from taskloss.data.samples import mni_slice, shepp_logan
from taskloss.features import IMAGENET_INPUT, VGG19Features, prepare_input
from taskloss.losses import CRN_LAYERS, PerceptualLoss

from common import machine

Step = Callable[[], float]


def images(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    bases = [shepp_logan(size)] + [resize(mni_slice(axis=2, index=60 + i), (size, size)) for i in range(7)]
    target = np.stack([bases[i % len(bases)] for i in range(batch)]).astype(np.float32)
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1).astype(np.float32)
    return torch.from_numpy(pred)[:, None], torch.from_numpy(target)[:, None]


def taskloss_step(vgg: VGG19Features, pred: torch.Tensor, target: torch.Tensor) -> Step:
    loss = PerceptualLoss(network=vgg)
    leaf = pred.clone().requires_grad_(True)

    def step() -> float:
        value = loss(leaf, target)
        value.backward()
        leaf.grad = None
        return float(value.detach())

    return step


def _run(body: nn.Sequential, taps: list[int], x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for index, layer in enumerate(body):
        x = layer(x)
        if index in taps:
            out.append(x)
    return out


def _l1_sum(features: list[torch.Tensor], reference: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([(a - b).abs().mean() for a, b in zip(features, reference, strict=True)]).sum()


def lower_bound_step(vgg: VGG19Features, pred: torch.Tensor, target: torch.Tensor) -> Step:
    taps = [vgg._taps[name] for name in CRN_LAYERS]
    body = vgg.features[: max(taps) + 1]
    x_pred = prepare_input(pred, (0.0, 1.0), IMAGENET_INPUT).requires_grad_(True)
    x_target = prepare_input(target, (0.0, 1.0), IMAGENET_INPUT)

    def forward() -> torch.Tensor:
        # A function, so the activations not saved for backward are freed before it runs.
        features = _run(body, taps, x_pred)
        with torch.no_grad():
            reference = _run(body, taps, x_target)
        return _l1_sum(features, reference)

    def step() -> float:
        value = forward()
        value.backward()
        x_pred.grad = None
        return float(value.detach())

    return step


def naive_step(vgg: VGG19Features, pred: torch.Tensor, target: torch.Tensor) -> Step:
    trainable = copy.deepcopy(vgg).requires_grad_(True)
    taps = [vgg._taps[name] for name in CRN_LAYERS]
    mean = torch.tensor(IMAGENET_INPUT.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_INPUT.std).reshape(1, 3, 1, 1)
    leaf = pred.clone().requires_grad_(True)

    def forward() -> torch.Tensor:
        features = _run(trainable.features, taps, (leaf.repeat(1, 3, 1, 1) - mean) / std)
        reference = _run(trainable.features, taps, (target.repeat(1, 3, 1, 1) - mean) / std)
        return _l1_sum(features, reference)

    def step() -> float:
        value = forward()
        value.backward()
        leaf.grad = None
        for parameter in trainable.parameters():
            parameter.grad = None
        return float(value.detach())

    return step


def third_party_steps(pred: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, Step], list[str]]:
    """MONAI's and piq's perceptual losses where they can run here; reasons where they cannot."""
    steps: dict[str, Step] = {}
    notes = []
    if importlib.util.find_spec("monai") is None:
        notes.append("MONAI PerceptualLoss: monai is not installed (pip install -e '.[bench]')")
    else:
        from monai.losses import PerceptualLoss as MonaiPerceptualLoss

        try:
            monai_loss = MonaiPerceptualLoss(spatial_dims=2, network_type="vgg", pretrained=False)
            leaf = pred.clone().requires_grad_(True)

            def monai_step() -> float:
                value = monai_loss(leaf, target)
                value.backward()
                leaf.grad = None
                return float(value.detach())

            monai_step()
            steps["MONAI PerceptualLoss (LPIPS VGG-16)"] = monai_step
        except Exception as error:  # it fails in several ways without torchvision / lpips / weights
            notes.append(f"MONAI PerceptualLoss: cannot run offline here ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:160]}); its VGG needs the lpips package, "
                         "torchvision and downloaded weights")
    if importlib.util.find_spec("piq") is None:
        notes.append("piq ContentLoss: piq is not installed (it needs torchvision, which cannot be "
                     "installed beside this torch build, and downloads VGG weights at construction)")
    return steps, notes


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key))


def step_peak_memory(step: Step) -> float:
    """MiB by which the resident set grows during one step (after one warm-up step)."""
    step()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM, the peak resident set, to the current size
    before = _status_bytes("VmRSS")
    step()
    return (_status_bytes("VmHWM") - before) / 2**20


def build(size: int, batch: int) -> dict[str, Step]:
    vgg = VGG19Features("random", seed=0)
    pred, target = images(batch, size)
    return {
        "taskloss PerceptualLoss": taskloss_step(vgg, pred, target),
        "lower bound": lower_bound_step(vgg, pred, target),
        "straightforward": naive_step(vgg, pred, target),
    }


def measure_memory_in_child(size: int, batch: int, threads: int) -> dict[str, float]:
    """Peak memory of each step, measured in a fresh process with glibc's mmap threshold fixed."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    command = [sys.executable, __file__, "--memory-child", str(size), "--batch", str(batch),
               "--threads", str(threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    values = {}
    for line in result.stdout.splitlines():
        name, mib = line.rsplit("\t", 1)
        values[name] = float(mib)
    return values


def timed(step: Step) -> tuple[float, float]:
    """Wall time and CPU time (all threads of this process) of one step, in seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(steps: dict[str, Step], rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per implementation over interleaved rounds in rotating order."""
    names = list(steps)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)  # no implementation always goes first
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(steps[name]))
    return {name: (float(np.median([w for w, _ in values])), float(np.median([c for _, c in values])))
            for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        for name, step in build(args.memory_child, args.batch).items():
            print(f"{name}\t{step_peak_memory(step):.1f}")
        return

    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"batch {args.batch}, grayscale, VGG-19 (random weights) layers {', '.join(CRN_LAYERS)}, L1; "
          f"median of {args.rounds} interleaved rounds after 1 warm-up round. Ratios are given for wall "
          "time and for CPU time (the process's own, steadier when other jobs share the cores).\n")
    print(f"{'size':>4} {'implementation':24} {'wall ms':>8} {'CPU ms':>8} {'/lower bound':>13} "
          f"{'straightforward/this':>21} {'peak MiB':>9} {'loss value':>10}")
    print(f"{'':>4} {'':24} {'':>8} {'':>8} {'wall | CPU':>13} {'wall | CPU':>21}")
    for size in args.sizes:
        steps = build(size, args.batch)
        pred, target = images(args.batch, size)
        extra, notes = third_party_steps(pred, target)
        steps.update(extra)
        values = {name: step() for name, step in steps.items()}  # warm-up round
        medians = measure(steps, args.rounds)
        memory = measure_memory_in_child(size, args.batch, args.threads)
        bound, naive = medians["lower bound"], medians["straightforward"]
        for name, (wall, cpu) in medians.items():
            mib = f"{memory[name]:9.0f}" if name in memory else f"{'-':>9}"
            print(f"{size:>4} {name:24} {wall * 1e3:8.0f} {cpu * 1e3:8.0f} "
                  f"{wall / bound[0]:5.3f} | {cpu / bound[1]:5.3f} "
                  f"{naive[0] / wall:9.2f} | {naive[1] / cpu:9.2f} {mib} {values[name]:10.5f}")
        for note in notes:
            print(f"{size:>4} {note}")
        print()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
