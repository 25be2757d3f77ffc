"""End to end: a study file on 12 generated pairs (PNG and NPY, 32 px, labels), one epoch, via the CLI."""

import csv
import json
import math
import re
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml
from scipy import ndimage
from typer.testing import CliRunner

import taskloss
from taskloss.cli import app, main
from taskloss.data.sources import DataSpec, paired_data, paired_splits
from taskloss.data.sources.folders import assign_subjects, subject_of
from taskloss.errors import ConfigError, DataError
from taskloss.metrics import haarpsi, vsi
from taskloss.metrics.power import VarianceComponents, minimal_detectable_effect
from taskloss.networks import create_network
from taskloss.provenance import KEYS
from taskloss.readers.study import read_results
from taskloss.studies import render_report
from taskloss.studies.common import subject_half
from taskloss.studies.engine import plan_detectable, plan_study, run_file_study, run_study_of, segmentation_run
from taskloss.studies.plan import plan_table
from taskloss.studies.spec import load_study

SIZE = 32
STUDY = {
    "name": "tiny",
    # test 0.3 of 6 subjects: 2 test subjects, the fewest an interval over subjects needs.
    "data": {"path": "pairs", "size": SIZE, "split": {"val": 0.2, "test": 0.3}},
    "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}},
                 "resnet": {"name": "resnet", "options": {"base_width": 4, "num_blocks": 1}}},
    "losses": {"l1": {"l1": 1.0}, "ssim_l1": {"ssim": 0.84, "l1": {"weight": 0.16, "balance": "first"}},
               "task_l1": {"l1": 1.0, "task": {"weight": 0.1, "output": "dice"}}},
    "metrics": ["mae", "psnr", "ssim"],
    "baseline": "l1",
    "training": {"epochs": 1, "batch_size": 4},
    "segmentation": {"epochs": 1, "options": {"widths": [4, 8]}},
    "figure_cases": 2,
}
RUNS = ["unet-l1", "unet-ssim_l1", "unet-task_l1", "resnet-l1", "resnet-ssim_l1", "resnet-task_l1"]


def make_pairs(folder, count=12, size=SIZE, seed=0):
    """``count`` noisy -> clean pairs named ``sub<k // 2>_<k % 2>`` (two images per subject); even
    pairs as PNG (8 bit), odd as NPY; labels/ marks the bright blobs of the target."""
    rng = np.random.default_rng(seed)
    for name in ("input", "target", "labels"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        clean = ndimage.gaussian_filter(rng.random((size, size)), 3.0)
        clean = (clean - clean.min()) / (clean.max() - clean.min())
        noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
        name = f"sub{k // 2}_{k % 2}"
        if k % 2 == 0:
            iio.imwrite(folder / "input" / f"{name}.png", (noisy * 255).astype(np.uint8))
            iio.imwrite(folder / "target" / f"{name}.png", (clean * 255).astype(np.uint8))
        else:
            np.save(folder / "input" / f"{name}.npy", noisy.astype(np.float32))
            np.save(folder / "target" / f"{name}.npy", clean.astype(np.float32))
        np.save(folder / "labels" / f"{name}.npy", (clean > 0.7).astype(np.int64))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    make_pairs(root / "pairs")
    (root / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    out = root / "out"
    result = CliRunner().invoke(app, ["study", "run", str(root / "study.yaml"), "--out", str(out),
                                      "--accelerator", "cpu"])
    assert result.exit_code == 0, result.output
    return root, out / "tiny"


def test_every_network_and_loss_is_a_run_scored_on_the_same_test_images(study):
    _, folder = study
    assert sorted(p.name for p in (folder / "runs").iterdir()) == sorted(RUNS)
    ids = set()
    for run in RUNS:
        with open(folder / "runs" / run / "evaluation" / "test.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        # HaarPSI and VSI fit 32 px images; MS-SSIM (>= 161 px) does not, so it is not computed.
        assert list(rows[0]) == ["id", "mae", "psnr", "ssim", "hfen", "nmse", "haarpsi", "vsi", "dice", "roi"]
        ids.add(tuple(row["id"] for row in rows))
    assert len(ids) == 1


def test_the_task_loss_uses_its_own_task_network_not_the_scoring_one(study):
    _, folder = study
    loss_network = yaml.safe_load((folder / "task_network" / "config.yaml").read_text())
    scoring_network = yaml.safe_load((folder / "segmentation" / "config.yaml").read_text())
    assert (loss_network["training"]["seed"], scoring_network["training"]["seed"]) == (1, 0)
    # Not siblings: another architecture family, and disjoint halves of the training subjects.
    assert (loss_network["network"], scoring_network["network"]) == ("segmentation_unet", "segmentation_resnet")
    assert (loss_network["train_subjects"], scoring_network["train_subjects"]) == ("first_half", "second_half")
    info = json.loads((folder / "runs" / "unet-task_l1" / "evaluation" / "run.json").read_text())
    assert info["loss"] == "1 l1 + 0.1 task"
    # Which code and machine trained it (taskloss.provenance), recorded with the run.
    assert set(info["provenance"]) == set(KEYS)
    assert (info["provenance"]["torch"], info["provenance"]["taskloss"]) == (torch.__version__, taskloss.__version__)


def test_mae_in_the_csv_is_the_mean_absolute_error_of_the_saved_predictions(study):
    _, folder = study
    spec = load_study(folder / "study.yaml")
    data = paired_data(spec.data)
    with np.load(folder / "runs" / "unet-l1" / "evaluation" / "test_predictions.npz") as arrays:
        predictions = dict(zip(arrays["ids"], arrays["pred"], strict=True))
    with open(folder / "runs" / "unet-l1" / "evaluation" / "test.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            target = data.targets[data.ids.index(row["id"])][0].numpy().astype(np.float64)
            prediction = predictions[row["id"]].astype(np.float64)
            assert prediction.min() >= 0.0 and prediction.max() <= 1.0  # clipped to the target scale
            assert float(row["mae"]) == pytest.approx(np.abs(prediction - target).mean(), rel=1e-5)


def test_haarpsi_and_vsi_in_the_csv_are_those_of_the_saved_predictions(study):
    _, folder = study
    data = paired_data(load_study(folder / "study.yaml").data)
    with np.load(folder / "runs" / "resnet-ssim_l1" / "evaluation" / "test_predictions.npz") as arrays:
        ids, pred = list(arrays["ids"]), torch.from_numpy(arrays["pred"].astype(np.float64))[:, None]
    target = torch.stack([data.targets[data.ids.index(i)] for i in ids]).double()
    with open(folder / "runs" / "resnet-ssim_l1" / "evaluation" / "test.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    for name, metric in (("haarpsi", haarpsi), ("vsi", vsi)):
        expected = metric(pred, target, data_range=1.0)
        assert [float(rows[i][name]) for i in ids] == pytest.approx(expected.tolist(), rel=1e-5)


def test_table_tests_figure_report_and_reader_hand_off(study):
    _, folder = study
    results = folder / "results"
    table = (results / "table.md").read_text().splitlines()
    assert table[0] == "| Network - loss | MAE ↓ | PSNR ↑ | SSIM ↑ | SIS ↑ |"
    assert [line.split(" | ")[0].removeprefix("| ") for line in table[2:8]] == [
        "unet - l1", "unet - ssim_l1", "unet - task_l1", "resnet - l1", "resnet - ssim_l1", "resnet - task_l1"]
    comparisons = (results / "comparisons.md").read_text().splitlines()
    assert comparisons[0] == ("| Family | Metric | Method vs baseline | Subjects | Seeds | Difference [95 % CI] | "
                              "p (Holm) | Verdict |")
    rows = [line.split(" | ") for line in comparisons[2:] if line.startswith("| ")]
    # Per network, ssim_l1 and task_l1 against l1 on MAE, PSNR, SSIM and Dice (primary); no SIS: the one-epoch
    # segmentation network finds nothing on the targets (Dice 0), so SIS is undefined and left out.
    assert [(r[0], r[1], r[2]) for r in rows[:2]] == [("| primary", "MAE", "unet - ssim_l1 vs unet - l1"),
                                                      ("| primary", "MAE", "unet - task_l1 vs unet - l1")]
    assert len(rows) == 2 * 2 * 4 and {r[3] for r in rows} == {"2"}
    assert (results / "figure.png").read_bytes()[:4] == b"\x89PNG"
    with open(results / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_test = len(rows) // len(RUNS)
    assert n_test >= 2 and len(rows) == n_test * len(RUNS)
    assert list(rows[0])[:3] == ["method", "subject", "case"] and {r["subject"] for r in rows} == {"sub1", "sub2"}
    hand_off = read_results(results)  # what `taskloss readers create --from` checks
    assert [m.key for m in hand_off.methods] == [*RUNS, "ground_truth"]
    assert len(hand_off.case_ids) == n_test
    assert json.loads((results / "methods.json").read_text())["methods"][0] == {"key": "unet-l1",
                                                                                 "label": "unet - l1"}
    report = render_report(folder.parent).read_text()
    assert "## tiny (study file)" in report and "![tiny test images](tiny/results/figure.png)" in report
    assert "split by subject" in report


def test_finished_runs_are_skipped(study):
    root, folder = study
    checkpoints = sorted((folder / "runs").glob("*/checkpoints/last.ckpt"))
    before = [p.stat().st_mtime_ns for p in checkpoints]
    run_file_study(load_study(root / "study.yaml"), folder, accelerator="cpu")
    assert [p.stat().st_mtime_ns for p in checkpoints] == before


def test_a_changed_study_file_is_refused_for_existing_runs(study):
    root, folder = study
    changed = root / "changed.yaml"
    training = {"epochs": 2, "batch_size": 4, "lr": 0.01}
    changed.write_text(yaml.safe_dump({**STUDY, "training": training}, sort_keys=False))
    with pytest.raises(ConfigError, match=r"unet-l1 holds a run with other settings \(changed: training.epochs, "
                                          r"training.optimizer.lr\)"):
        run_file_study(load_study(changed), folder, accelerator="cpu")


def _trained_subjects(run):
    return {item["subject"] for item in subject_half(paired_splits(run.data).train, run.train_subjects)}


def test_the_task_network_and_the_scorer_learn_from_disjoint_halves_of_the_training_subjects(study):
    root, _ = study
    spec = load_study(root / "study.yaml")
    task_network, scorer = segmentation_run(spec, "task_network"), segmentation_run(spec)
    assert task_network is not None and scorer is not None
    train = {item["subject"] for item in paired_splits(spec.data).train}
    first, second = _trained_subjects(task_network), _trained_subjects(scorer)
    assert first.isdisjoint(second) and first | second == train and len(first) == len(train) // 2
    # Without a task term there is no loss's network to be independent of: the scorer learns from all.
    alone = spec.model_copy(update={"losses": {"l1": spec.losses["l1"]}})
    assert segmentation_run(alone, "scorer").train_subjects == "all"


def test_a_segmentation_run_is_also_trained_alone_and_returns_at_once_when_finished(study):
    _, folder = study
    config = yaml.safe_load((folder / "segmentation" / "config.yaml").read_text())
    finished = run_study_of(config, "config.yaml").train(config, folder / "segmentation", "config.yaml")
    assert finished.epochs == 1 and math.isnan(finished.seconds_per_step)
    info = json.loads((folder / "segmentation" / "evaluation" / "run.json").read_text())
    assert info["loss"] == "cross-entropy on the targets" and info["epochs"] == 1


def test_evaluating_a_segmentation_run_gives_the_dice_the_study_recorded(study, tmp_path):
    _, folder = study
    shutil.copytree(folder / "segmentation", tmp_path / "scorer")
    (tmp_path / "scorer" / "evaluation" / "test.csv").unlink()
    config = yaml.safe_load((tmp_path / "scorer" / "config.yaml").read_text())
    written = run_study_of(config, "config.yaml").evaluate(tmp_path / "scorer", "test")  # `taskloss evaluate`
    # The study's own record: the scorer's Dice on the test targets (the denominator of SIS).
    assert written.read_text() == (folder / "segmentation" / "evaluation" / "test.csv").read_text()
    validation = run_study_of(config, "config.yaml").evaluate(tmp_path / "scorer", "val")
    rows = list(csv.DictReader(validation.read_text().splitlines()))
    assert list(rows[0]) == ["id", "dice", "roi"] and {r["roi"] for r in rows} <= {"0.0", "1.0"}


def test_a_task_network_needs_two_training_subjects_before_anything_is_written(tmp_path):
    make_pairs(tmp_path / "pairs", count=6)  # 3 subjects: 1 train, 1 val, 1 test
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    with pytest.raises(DataError) as error:
        run_file_study(load_study(tmp_path / "study.yaml"), tmp_path / "out" / "tiny", accelerator="cpu")
    assert str(error.value) == (f"{tmp_path / 'pairs'}: the training split holds 1 subject, but the task network "
                                "and the scorer train on two halves of the training subjects; add subjects (or "
                                "lower data.split.val and .test)")
    assert not (tmp_path / "out").exists()


def test_split_keeps_each_subject_in_one_split(study):
    root, _ = study
    data = paired_data(DataSpec(path=root / "pairs", size=SIZE))
    assert data.by == "subject"
    for subject in set(data.subjects):
        assert len({s for s, sub in zip(data.splits, data.subjects, strict=True) if sub == subject}) == 1
    assert sorted(set(data.splits)) == ["test", "train", "val"]


def test_subject_rule():
    assert subject_of("p07_slice012") == "p07" and subject_of("p_07_s3") == "p_07"
    assert subject_of("scan") is None and subject_of("_3") is None
    assert assign_subjects(["a_1", "a_2", "b_1", "c_1"], "auto") == (["a", "a", "b", "c"], "subject")
    # Every prefix unique (as many subjects as files) or fewer than 3 subjects: by file.
    assert assign_subjects(["a_1", "b_1", "c_1"], "auto") == (["a_1", "b_1", "c_1"], "file")
    assert assign_subjects(["a_1", "a_2", "b_1", "b_2"], "auto")[1] == "file"
    assert assign_subjects(["a_1", "a_2", "b_1"], "file") == (["a_1", "a_2", "b_1"], "file")
    with pytest.raises(DataError, match=r"data.split.by is 'subject' but the file name 'scan' has no '_'"):
        assign_subjects(["a_1", "scan"], "subject")


def test_unmatched_files_are_named(tmp_path):
    make_pairs(tmp_path, count=4)
    (tmp_path / "target" / "sub0_0.png").unlink()
    with pytest.raises(DataError, match=r"\['sub0_0'\] are not in every one of input, target, labels"):
        paired_data(DataSpec(path=tmp_path, size=SIZE))


def _unet_only(root, name, losses=("l1",)):
    """The fixture's unet runs of ``losses``, scored by the fixture's trained segmentation network."""
    path = root / f"{name}.yaml"
    weights = str(root / "out" / "tiny" / "segmentation" / "checkpoints" / "best.ckpt")
    path.write_text(yaml.safe_dump({**STUDY, "name": name, "networks": {"unet": STUDY["networks"]["unet"]},
                                    "losses": {k: STUDY["losses"][k] for k in losses},
                                    "segmentation": {**STUDY["segmentation"], "weights": weights}},
                                   sort_keys=False))
    return load_study(path)


def _values(folder, run):
    with open(folder / "runs" / run / "evaluation" / "test.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if k != "id"} for row in csv.DictReader(handle)]


def _same_metrics(results, folder, runs=("unet-l1",)):
    for run in runs:
        for got, expected in zip(_values(results.parent, run), _values(folder, run), strict=True):
            assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_the_submitit_path_trains_the_same_runs(study):
    """The path of --launcher slurm (submit, batch, wait, results) on submitit's in-process executor."""
    root, folder = study
    results = run_file_study(_unet_only(root, "debug"), root / "out" / "debug", accelerator="cpu",
                             launcher="submitit-debug")
    _same_metrics(results, folder)
    assert json.loads((root / "out" / "debug" / "study.json").read_text())["launcher"] == "submitit-debug"


@pytest.mark.slow
def test_jobs_2_and_the_submitit_local_executor_train_the_same_runs(study):
    """Runs trained two at a time in spawned processes, and as submitit jobs in subprocesses (its
    local executor), end with the metrics of runs trained one after the other."""
    root, folder = study
    parallel = _unet_only(root, "parallel", ("l1", "ssim_l1"))
    _same_metrics(run_file_study(parallel, root / "out" / "parallel", accelerator="cpu", jobs=2), folder,
                  ("unet-l1", "unet-ssim_l1"))
    _same_metrics(run_file_study(_unet_only(root, "submitted"), root / "out" / "submitted", accelerator="cpu",
                                 launcher="submitit-local"), folder)
    assert list((root / "out" / "submitted" / "submitit").glob("*_result.pkl"))


def test_plan_lists_runs_sizes_and_marks_finished_ones(study):
    root, folder = study
    spec = load_study(root / "study.yaml")
    planned = plan_study(spec, folder, steps=1, accelerator="cpu")
    # The graph: the task loss's network, the runs (those with the task term need it), the scorer.
    assert [run.name for run in planned] == ["task_network", *(f"runs/{r}" for r in RUNS), "segmentation"]
    assert {run.name: run.needs for run in planned if run.needs} == {
        "runs/unet-task_l1": ("task_network",), "runs/resnet-task_l1": ("task_network",)}
    unet = sum(p.numel() for p in create_network("unet", widths=[4, 8]).parameters())
    assert planned[1].parameters == unet and planned[1].steps == 2  # ceil(train images / 4) x 1 epoch
    assert all(run.finished and run.seconds_per_step > 0 for run in planned)
    table = plan_table(planned, jobs=2)
    assert f"| runs/unet-l1 | {unet:,} | 2 |" in table and "done (skipped)" in table and "--jobs 2" in table


def test_plan_gives_the_minimal_detectable_effects_from_the_studys_own_results(study):
    root, folder = study
    text = plan_detectable(load_study(root / "study.yaml"), folder / "results" / "per_image.csv")
    # Default primary family: the metrics and Dice x the two losses against l1 = 8 tests per network.
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith(("| mae", "| psnr", "| ssim", "| dice"))]
    assert len(rows) == 2 * 4 * 2 and {r[-2] for r in rows} == {f"{0.05 / 8:.3g}"}
    # One row worked by hand from the CSV: the sd of the subject means of resnet-ssim_l1 - resnet-l1 PSNR (one
    # seed), the design's test subjects, the level alpha / 8.
    with open(folder / "results" / "per_image.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    psnr = {(r["method"], r["case"]): float(r["psnr"]) for r in table}
    subjects = sorted({r["subject"] for r in table})
    means = [np.mean([psnr["resnet-ssim_l1", r["case"]] - psnr["resnet-l1", r["case"]] for r in table
                      if r["method"] == "resnet-l1" and r["subject"] == s]) for s in subjects]
    expected = minimal_detectable_effect(len(means), 1, VarianceComponents(float(np.std(means, ddof=1))), 0.05 / 8)
    row = next(r for r in rows if r[0] == "| psnr" and r[1] == "resnet-ssim_l1")
    assert row[3] == f"{np.std(means, ddof=1):.3g}" and row[-1] == f"{expected:.3g} |"
    assert f"for {len(subjects)} test subjects x 1 seed (power 80%" in text


def test_plan_lists_every_run_once_per_seed_and_times_each_once(study):
    root, folder = study
    spec = load_study(root / "study.yaml")
    seeded = spec.model_copy(update={"seeds": [0, 4]})
    calls = []

    def measure(task, fabric, prepared, config, steps):
        calls.append(type(task).__name__)
        return 0.5, 0.25

    planned = plan_study(seeded, folder, steps=1, accelerator="cpu", measure=measure)
    nodes = ["task_network", *(f"runs/{r}" for r in RUNS), "segmentation"]
    assert [p.name for p in planned] == [f"seeds/{s}/{r}" for s in (0, 4) for r in nodes]
    assert len(calls) == len(nodes) and not any(p.finished for p in planned)  # no replicate trained yet


def test_set_overrides_a_study_file_for_plan_and_run(study, tmp_path):
    root, _ = study
    runner = CliRunner()
    base = runner.invoke(app, ["study", "plan", str(root / "study.yaml"), "--out", str(tmp_path), "--steps", "1",
                               "--accelerator", "cpu"])
    more = runner.invoke(app, ["study", "plan", str(root / "study.yaml"), "--out", str(tmp_path), "--steps", "1",
                               "--accelerator", "cpu", "--set", "training.epochs=3"])
    assert base.exit_code == 0 and more.exit_code == 0, more.output
    steps = [re.findall(r"^\| runs/unet-l1 \| [\d,]+ \| (\d+) \|", r.output, re.M) for r in (base, more)]
    assert steps == [["2"], ["6"]]  # ceil(train images / 4) steps per epoch, 1 epoch vs 3
    out = tmp_path / "run"
    result = runner.invoke(app, ["study", "run", str(root / "study.yaml"), "--out", str(out), "--accelerator", "cpu",
                                 "--set", "networks={unet: {name: unet, options: {widths: [4, 8]}}}",
                                 "--set", "losses={l1: {l1: 1.0}, ssim_l1: {ssim: 1.0}}"])
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((out / "tiny" / "study.yaml").read_text())
    assert sorted(recorded["losses"]) == ["l1", "ssim_l1"] and list(recorded["networks"]) == ["unet"]
    assert sorted(p.name for p in (out / "tiny" / "runs").iterdir()) == ["unet-l1", "unet-ssim_l1"]


def test_cli_plan_refuses_a_missing_pilot(study, monkeypatch, capsys):
    root, _ = study
    missing = root / "nowhere.csv"
    monkeypatch.setattr(sys, "argv", ["taskloss", "study", "plan", str(root / "study.yaml"), "--pilot", str(missing)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"taskloss: error: --pilot {missing}: no such file; give a long per-image CSV such as an earlier run's "
        "results/per_image.csv, or leave --pilot out")


def test_cli_reports_a_bad_study_file_in_one_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**STUDY, "losses": {"l1": {"l2": 1.0}}}, sort_keys=False))
    monkeypatch.setattr(sys, "argv", ["taskloss", "study", "plan", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()  # the console script's error handling
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"taskloss: error: {bad}: losses.l1: unknown key 'l2'; choose one of l1, mse, nmse, ssim, frequency, "
        "perceptual, adversarial, feature_matching, penalty, task")


def test_label_values_become_classes_in_sorted_order(tmp_path):
    make_pairs(tmp_path, count=6)
    for path in sorted((tmp_path / "labels").glob("*.npy")):
        iio.imwrite(path.with_suffix(".png"), (np.load(path) * 255).astype(np.uint8))  # a 0/255 mask
        path.unlink()
    data = paired_data(DataSpec(path=tmp_path, size=SIZE))
    expected = torch.stack([torch.from_numpy(iio.imread(tmp_path / "labels" / f"{i}.png") // 255) for i in data.ids])
    assert torch.equal(data.labels[:, 0], expected.long())


def _documented_outputs() -> list[str]:
    """What docs/studies.md's "Output folder" block says a study file's run writes, as paths under
    OUT/<name>/: each row's path and the files it lists (``as above`` takes the built-in studies'
    run row; what a row says after ``;`` or in parentheses, which is conditional or explains, and
    the slurm launcher's folder are left out)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "studies.md").read_text()
    block = text.split("## Output folder", 1)[1].split("```")[1]
    rows: dict[str, str] = {}
    key = ""
    for line in block.strip().splitlines():
        if line.startswith("OUT/"):
            key, _, rest = line.partition(" ")
            rows[key] = rest.strip()
        else:
            rows[key] += " " + line.strip()
    names = {"runs/<run>/": rows["OUT/<study>/runs/<run>/"].split(";")[0] + ", "
                            + rows["OUT/<name>/runs/<network>-<loss>/"].replace("as above,", "")}
    names.update({key.removeprefix("OUT/<name>/"): value for key, value in rows.items()
                  if key.startswith("OUT/<name>/") and "runs/" not in key and "submitit" not in key})
    found = [key for key in names if key != "runs/<run>/"]
    for folder, listing in names.items():
        listing = re.sub(r"\([^)]*\)", "", listing.split(";")[0])
        for item in re.split(r"[,\s]+(?:and\s+)?", listing):
            if re.fullmatch(r"[\w*/-]+(\.[\w*]+|/)", item):
                found.append(folder + item if folder.endswith("/") else item)
    return found


def test_every_file_the_docs_say_a_study_run_writes_is_written(study):
    _, folder = study
    documented = _documented_outputs()
    assert {"runs/<run>/config.yaml", "runs/<run>/val_log.csv", "runs/<run>/test_predictions.npz", "segmentation/",
            "study.yaml", "results/figure.png", "results/methods.json"} <= set(documented), documented
    for item in documented:
        pattern = item.replace("<run>", "*").replace("runs/*/test", "runs/*/evaluation/test")
        hits = list(folder.glob(pattern.rstrip("/")))
        assert hits, f"docs/studies.md says a study run writes {item}; {folder} has no {pattern}"


def test_taskloss_compare_recomputes_every_comparison_of_the_report(study, tmp_path, taskloss_cli):
    """The `taskloss compare` calls that comparisons.md lists give comparisons.csv's rows, value for value."""
    _, folder = study
    results = folder / "results"
    block = (results / "comparisons.md").read_text().split("```")[1]
    commands = [line.split() for line in block.strip().splitlines()]
    assert len(commands) == 2  # one per network
    recomputed = []
    for words in commands:
        assert words[:2] == ["taskloss", "compare"]
        args = [str(folder / words[2]) if w == "results/per_image.csv" else w for w in words[2:]]
        args[-1] = str(tmp_path / args[-1])  # --out comparisons/<baseline>
        status, _, stderr = taskloss_cli("compare", *args)
        assert status == 0, stderr
        with open(Path(args[-1]) / "comparisons.csv", newline="") as handle:
            recomputed += list(csv.DictReader(handle))
    with open(results / "comparisons.csv", newline="") as handle:
        reported = list(csv.DictReader(handle))
    assert len(reported) == 16 and reported == recomputed


@pytest.fixture(scope="module")
def seeded(study):
    """The fixture's study, unet only, over seeds [0, 3]: two whole replicates."""
    root, _ = study
    path = root / "seeded.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "name": "seeded", "networks": {"unet": STUDY["networks"]["unet"]},
                                    "seeds": [0, 3]}, sort_keys=False))
    out = root / "out"
    result = CliRunner().invoke(app, ["study", "run", str(path), "--out", str(out), "--accelerator", "cpu"])
    assert result.exit_code == 0, result.output
    return out / "seeded"


def test_seeds_run_the_whole_study_once_per_seed_with_shifted_training_seeds(seeded):
    assert sorted(p.name for p in (seeded / "seeds").iterdir()) == ["0", "3"]
    seeds = {}
    for replicate in ("0", "3"):
        folder = seeded / "seeds" / replicate
        assert sorted(p.name for p in (folder / "runs").iterdir()) == ["unet-l1", "unet-ssim_l1", "unet-task_l1"]
        seeds[replicate] = [yaml.safe_load((folder / sub / "config.yaml").read_text())["training"]["seed"]
                            for sub in ("runs/unet-l1", "task_network", "segmentation")]
    # Seed 3 shifts every training seed by 3 x 1000 (runs 0, task network 1, scorer 0).
    assert seeds == {"0": [0, 1, 0], "3": [3000, 3001, 3000]}
    assert json.loads((seeded / "seeds.json").read_text())["training_seed_offset"] == {"0": 0, "3": 3000}


def test_the_seed_report_pools_the_replicates_and_compare_recomputes_it(seeded, tmp_path, taskloss_cli):
    results = seeded / "results"
    with open(results / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["method", "subject", "case", "seed"] and {r["seed"] for r in rows} == {"0", "3"}
    with open(seeded / "seeds" / "3" / "results" / "per_image.csv", newline="") as handle:
        replicate = list(csv.DictReader(handle))
    assert [r["mae"] for r in rows if r["seed"] == "3"] == [r["mae"] for r in replicate]
    with open(results / "comparisons.csv", newline="") as handle:
        reported = list(csv.DictReader(handle))
    assert {r["n_seeds"] for r in reported} == {"2"} and {r["n_subjects"] for r in reported} == {"2"}
    words = (results / "comparisons.md").read_text().split("```")[1].split()
    args = [str(seeded / w) if w == "results/per_image.csv" else w for w in words[2:]]
    args[-1] = str(tmp_path / "again")
    status, _, stderr = taskloss_cli("compare", *args)
    assert status == 0, stderr
    with open(tmp_path / "again" / "comparisons.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == reported
    # The table: each seed's mean MAE, then their mean +- sd.
    per_seed = [np.mean([float(r["mae"]) for r in rows if r["method"] == "unet-l1" and r["seed"] == s])
                for s in ("0", "3")]
    line = next(x for x in (results / "table.md").read_text().splitlines() if x.startswith("| unet - l1 |"))
    assert line.split(" | ")[1] == f"{np.mean(per_seed):.4g} ± {np.std(per_seed, ddof=1):.2g}"
    report = render_report(seeded.parent).read_text()
    assert "## seeded (study file), over 2 training seeds (0, 3)" in report


def test_jobs_spread_the_runs_of_every_seed_and_give_the_same_results(study, seeded, tmp_path):
    """--jobs 2 trains the six runs of both replicates in one pool of two workers (then each replicate
    scores its finished runs): every per-image value equals the one-at-a-time study's."""
    root, _ = study
    result = CliRunner().invoke(app, ["study", "run", str(root / "seeded.yaml"), "--out", str(tmp_path),
                                      "--accelerator", "cpu", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    for replicate in ("0", "3"):
        # The pool trained them before the replicate ran: the replicate found every run finished.
        record = json.loads((tmp_path / "seeded" / "seeds" / replicate / "study.json").read_text())
        assert record["jobs"] == 2 and set(record["seconds_per_step"].values()) == {None}
        for run in ("unet-l1", "unet-ssim_l1", "unet-task_l1"):
            part = Path("seeds") / replicate / "runs" / run / "evaluation" / "test.csv"
            with open(seeded / part, newline="") as one, open(tmp_path / "seeded" / part, newline="") as two:
                first, second = list(csv.DictReader(one)), list(csv.DictReader(two))
            assert [r["id"] for r in first] == [r["id"] for r in second]
            for a, b in zip(first, second, strict=True):
                # thread counts change float rounding (a worker uses cores // 2 threads)
                assert float(a["mae"]) == pytest.approx(float(b["mae"]), rel=1e-4, abs=1e-6)


def test_one_seed_verdicts_say_they_are_exploratory_and_seeded_ones_do_not(study, seeded):
    _, folder = study
    one = render_report(folder.parent).read_text()
    single, pooled = one.split("## tiny (study file)")[1].split("\n## ")[0], one.split("over 2 training seeds")[1]
    assert "- One training seed: each verdict is about the networks trained here" in single
    assert "One training seed" not in pooled.split("\n## ")[0]
