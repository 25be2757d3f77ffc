import csv
import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from taskloss.errors import ConfigError, DataError
from taskloss.training.checkpoint import atomic_write, read_checkpoint
from taskloss.training.sampling import ResumableSampler

TOY = Path(__file__).with_name("toy_run.py")
spec = importlib.util.spec_from_file_location("toy_run", TOY)
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)


def _child(run_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(TOY), str(run_dir), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_fit_trains_logs_checkpoints_and_skips_when_finished(tmp_path):
    torch.set_num_threads(1)
    result, _ = toy.run(tmp_path, epochs=3)
    assert result.epochs == 3 and result.steps == 3 * 6
    assert result.history[-1]["mae"] < result.history[0]["mae"]
    assert result.best_epoch == min(range(3), key=lambda i: result.history[i]["mae"]) + 1
    assert [row["step"] for row in _rows(tmp_path / "train_log.csv")] == [str(s) for s in range(1, 19)]
    assert len(_rows(tmp_path / "val_log.csv")) == 3
    assert any((tmp_path / "tensorboard").iterdir())
    best = read_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert best["loop"]["epoch"] == result.best_epoch
    again, _ = toy.run(tmp_path, epochs=3)
    assert again.steps == result.steps and math.isnan(again.seconds_per_step)  # no step was run


def test_kill_and_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    reference = _child(tmp_path / "reference")
    interrupted = tmp_path / "interrupted"
    child = _child(interrupted, "--delay", "0.05")
    log = interrupted / "train_log.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.is_file() and len(_rows(log)) >= 8:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = read_checkpoint(interrupted / "checkpoints" / "last.ckpt")["loop"]
    assert 0 < killed_at["global_step"] < 18, "the child should be killed mid-run"
    assert not (interrupted / "final.pt").exists()
    resumed = _child(interrupted)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    assert reference.wait(timeout=300) == 0, reference.stdout.read()
    expected = torch.load(tmp_path / "reference" / "final.pt")
    got = torch.load(interrupted / "final.pt")
    assert got["steps"] == expected["steps"] == 18
    for name, value in expected["weights"].items():
        assert torch.equal(got["weights"][name], value), name
    assert got["history"] == expected["history"]
    steps = [int(row["step"]) for row in _rows(interrupted / "train_log.csv")]
    assert steps == list(range(1, 19)), "no step may be logged twice or lost"


def test_ddp_on_two_cpu_processes_matches_one_process_with_double_batch(tmp_path):
    # Without dropout: each process draws its own dropout masks, so only then are the runs equal.
    single = _child(tmp_path / "single", "--batch", "4", "--epochs", "2", "--dropout", "0")
    ddp = _child(tmp_path / "ddp", "--devices", "2", "--batch", "2", "--epochs", "2", "--dropout", "0")
    assert ddp.wait(timeout=300) == 0, ddp.stdout.read()
    assert single.wait(timeout=300) == 0, single.stdout.read()
    expected = torch.load(tmp_path / "single" / "final.pt")
    got = torch.load(tmp_path / "ddp" / "final.pt")
    assert got["steps"] == expected["steps"] == 2 * 6
    for name, value in expected["weights"].items():
        torch.testing.assert_close(got["weights"][name], value, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(got["history"], expected["history"], strict=True):
        assert mine["mae"] == pytest.approx(theirs["mae"], rel=1e-4)


@pytest.mark.parametrize(("world", "batch"), [(1, 4), (2, 2), (3, 4)])
def test_sampler_global_batches_are_contiguous_blocks_and_resume_skips_exactly(world, batch):
    samplers = [ResumableSampler(10, seed=5, shuffle=True, rank=r, world_size=world) for r in range(world)]
    for sampler in samplers:
        sampler.seek(2)
    shares = [list(s) for s in samplers]
    permutation = torch.randperm(10, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2)).tolist()
    padded = (permutation * 2)[: -(-10 // world) * world]
    for k in range(-(-len(shares[0]) // batch)):
        block = sorted(i for share in shares for i in share[k * batch : (k + 1) * batch])
        assert block == sorted(padded[k * batch * world : (k + 1) * batch * world])
    samplers[0].seek(2, start=batch)
    assert list(samplers[0]) == shares[0][batch:]
    assert len(samplers[0]) == len(shares[0]) - batch


def test_corrupt_and_missing_checkpoints_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_checkpoint(tmp_path / "none.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="corrupt or unreadable"):
        read_checkpoint(bad)


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write(path, lambda tmp: tmp.write_bytes(b"old"))

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_unknown_monitor_is_a_config_error(tmp_path):
    from taskloss.training import SupervisedTask, Trainer, TrainingConfig

    config = TrainingConfig(epochs=1, batch_size=4, accelerator="cpu", monitor="ssim", progress=False)
    trainer = Trainer(SupervisedTask(toy.make_model, torch.nn.L1Loss(), toy.metrics), config, tmp_path)
    with pytest.raises(ConfigError, match=r"monitor='ssim' is not a validation metric.*'mae', 'psnr'"):
        trainer.fit(toy.ToyImages(8, 0), toy.ToyImages(4, 100))
    assert list(tmp_path.iterdir()) == [], "a config error must be raised before any file is written"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_resume_removes_stale_temporaries_and_adds_no_empty_event_files(tmp_path):
    torch.set_num_threads(1)
    stale = tmp_path / "checkpoints" / f".last.ckpt.tmp-{_dead_pid()}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / "checkpoints" / f".other.ckpt.tmp-{os.getpid()}"  # a running process's: kept
    live.write_bytes(b"being written")
    toy.run(tmp_path, epochs=1)
    assert not stale.exists() and live.exists()
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1
    toy.run(tmp_path, epochs=1)  # finished: nothing is logged, so no new events file
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1


def test_progress_is_one_line_per_epoch_when_not_a_terminal(tmp_path, capsys):
    from taskloss.training import SupervisedTask, Trainer, TrainingConfig

    torch.set_num_threads(1)
    config = TrainingConfig(epochs=2, batch_size=4, accelerator="cpu", monitor="mae", progress=True)
    trainer = Trainer(SupervisedTask(toy.make_model, torch.nn.L1Loss(), toy.metrics), config, tmp_path / "r")
    trainer.fit(toy.ToyImages(8, 0), toy.ToyImages(4, 100))
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["r epoch 1/2", "r epoch 2/2"]
    assert "validation mae " in lines[0] and "\r" not in captured.out + captured.err
