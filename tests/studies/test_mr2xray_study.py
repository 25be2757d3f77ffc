"""End to end: the mr2xray study at a tiny scale, its files, its report, and skipping finished runs."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from taskloss.errors import ConfigError
from taskloss.studies import render_report
from taskloss.studies.common import load_preset
from taskloss.studies.mr2xray import (
    MR2XRAY_PRESETS,
    MR2XRAY_STUDY,
    Mr2XrayPreset,
    Mr2XrayRun,
    mr2xray_plans,
    mr2xray_preset_runs,
    run_mr2xray,
)

TINY_FILE = Path(__file__).with_name("tiny") / "mr2xray-tiny.yaml"
TINY = load_preset(Mr2XrayPreset, MR2XRAY_STUDY, TINY_FILE)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    run_mr2xray(TINY, out / "mr2xray", accelerator="cpu")
    return out


def test_runs_are_trained_and_scored_on_the_same_test_images(study):
    runs = sorted(p.name for p in (study / "mr2xray" / "runs").iterdir())
    assert runs == ["crn-l1", "crn-perceptual", "resnet-l1", "resnet-perceptual", "unet-l1", "unet-perceptual",
                    "unet-task"]
    ids = set()
    for run in runs:
        with open(study / "mr2xray" / "runs" / run / "evaluation" / "test.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["id", "mae", "ssim", "psnr", "hfen", "bone_dice", "bone_dice_real",
                                 "bone_dice_loss_net", "bone_dice_real_loss_net"]
        ids.add(tuple(row["id"] for row in rows))
        assert all(-1 <= float(row["ssim"]) <= 1 and float(row["mae"]) >= 0 for row in rows)
    assert len(ids) == 1, "every run must be scored on the same test images"


def test_tables_report_and_figure(study):
    results = study / "mr2xray" / "results"
    table = (results / "table.md").read_text().splitlines()
    assert table[0] == ("| Network - loss | MAE ↓ | SSIM ↑ | PSNR ↑ | Task (bone Dice ratio) ↑ | "
                        "Task, loss's network (circular) ↑ |")
    labels = [line.split(" | ")[0].removeprefix("| ") for line in table[2:9]]
    assert labels == ["UNet - p loss", "ResNet - p loss", "CRN - p loss", "UNet - ℓ1 loss", "ResNet - ℓ1 loss",
                      "CRN - ℓ1 loss", "UNet - task loss"]
    assert sum(line.count("**") for line in table[2:5]) == 2 * 3  # one bold cell per column in each group
    assert "\\begin{tabular}" in (results / "table.tex").read_text()
    assert (results / "figure.png").read_bytes()[:4] == b"\x89PNG"
    report = render_report(study).read_text()
    assert "## MR → X-ray projection synthesis" in report and "taskloss domain network" in report
    assert "![mr2xray test images](mr2xray/results/figure.png)" in report
    # One test subject (4 subjects: 2 train, 1 val, 1 test): no interval over subjects, and the report says so.
    assert "- No comparison: the test split holds 1 subject(s)" in report
    assert "bone Dice by `task_networks/bone_scorer`" in report
    assert (results / "comparisons.md").read_text().startswith("No comparison: the test split holds fewer than 2")
    names = ("unet-perceptual", "unet-l1", "unet-task", "crn-l1", "crn-perceptual")
    plans = mr2xray_plans({name: (None, [], {"bone_dice": None}) for name in names})
    assert [plan.command("results/per_image.csv") for plan in plans] == [
        "taskloss compare results/per_image.csv --baseline unet-l1 --method unet-perceptual --method unet-task "
        "--metric mae --metric ssim --metric psnr --metric hfen --metric bone_dice --metric bone_dice_loss_net "
        "--primary hfen --primary bone_dice --out comparisons/unet-l1",
        "taskloss compare results/per_image.csv --baseline crn-l1 --method crn-perceptual --metric mae --metric ssim "
        "--metric psnr --metric hfen --metric bone_dice --metric bone_dice_loss_net --primary hfen --primary bone_dice "
        "--out comparisons/crn-l1"]


def test_task_loss_uses_the_bone_network_and_the_scorer_is_another(study):
    folder = study / "mr2xray"
    loss = json.loads((folder / "runs" / "unet-task" / "evaluation" / "run.json").read_text())["loss"]
    assert loss.startswith("l1 + 1 x task loss (kl; weights kl=1) on bone-segmentation UNet task_networks/bone")
    network = yaml.safe_load((folder / "task_networks" / "bone" / "config.yaml").read_text())
    scorer = yaml.safe_load((folder / "task_networks" / "bone_scorer" / "config.yaml").read_text())
    assert network["training"]["seed"] == 0 and scorer["training"]["seed"] == 1
    # Another architecture family, trained on the other half of the training subjects (issue 20).
    assert (network["network"], scorer["network"]) == ("segmentation_unet", "segmentation_resnet")
    assert (network["train_subjects"], scorer["train_subjects"]) == ("first_half", "second_half")


def test_finished_runs_are_skipped(study):
    before = {p: p.stat().st_mtime_ns for p in (study / "mr2xray" / "runs").glob("*/checkpoints/last.ckpt")}
    run_mr2xray(TINY, study / "mr2xray", accelerator="cpu")
    after = {p: p.stat().st_mtime_ns for p in (study / "mr2xray" / "runs").glob("*/checkpoints/last.ckpt")}
    assert before == after


def test_changed_settings_in_an_existing_run_folder_are_refused(study):
    changed = Mr2XrayPreset.model_validate({**TINY.model_dump(exclude_unset=True),
                                            "training": {**TINY.training_settings(), "epochs": 2}})
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(changed: training.epochs\)"):
        run_mr2xray(changed, study / "mr2xray", accelerator="cpu")


def test_presets_build_valid_runs_and_unknown_keys_are_named():
    for preset in MR2XRAY_PRESETS.values():
        runs = mr2xray_preset_runs(preset)
        assert len(runs) == 6 + len(preset.task_networks) and all(isinstance(r, Mr2XrayRun) for r in runs.values())
        assert [n for n in runs if n.endswith("-task")] == [f"{label.lower()}-task" for label in preset.task_networks]
    with pytest.raises(ConfigError) as error:
        next(iter(mr2xray_preset_runs(TINY, {"subject": 3}).values())).data_config()
    assert str(error.value).startswith("mr2xray data settings: (root): unknown key 'subject'; choose one of "
                                       "subjects, angles, size, ")


def test_the_numbers_are_those_of_the_study_before_the_presets_became_files(study, assert_golden):
    assert_golden("mr2xray", study / "mr2xray")
