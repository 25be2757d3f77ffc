"""End to end: the CS-MRI study at a tiny scale: every method, SIS, MOS from a reader study, report."""

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from taskloss.studies import render_report
from taskloss.studies.csmri import METHODS, csmri_plans, run_csmri

TASK_METHODS = ("recnet_finetuned", "recnet_task_0.5", "recnet_observer", "refinement_task")
TINY_FILE = Path(__file__).with_name("tiny") / "csmri-tiny.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    run_csmri(TINY_FILE, out / "csmri", accelerator="cpu")  # a study file, as `taskloss study run` reads it
    return out


def test_every_method_is_scored_per_slice(study):
    results = study / "csmri" / "results"
    ids = None
    for method in (*METHODS, *TASK_METHODS):
        with open(results / "per_image" / f"{method}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["id", "psnr", "ssim", "nmse", "dice", "dice_loss_net", "lesion"]
        ids = ids or [r["id"] for r in rows]
        assert [r["id"] for r in rows] == ids
        for image_id in ids:
            image = np.load(results / "images" / method / f"{image_id}.npy")
            assert image.dtype == np.float32 and image.shape == (64, 64) and 0 <= image.min() <= image.max() <= 1
    truth = list(csv.DictReader((results / "per_image" / "ground_truth.csv").read_text().splitlines()))
    assert all(float(r["psnr"]) == float("inf") and float(r["ssim"]) == pytest.approx(1.0) for r in truth)
    methods = json.loads((results / "methods.json").read_text())["methods"]
    assert [m["key"] for m in methods] == [*METHODS, *TASK_METHODS]
    assert [m["label"] for m in methods[-3:]] == ["RecNet + task loss (λ = 0.5)", "RecNet + observer loss",
                                                  "RecNet + refinement + task loss"]


def test_table_has_the_source_rows_and_a_dash_for_mos(study):
    table = (study / "csmri" / "results" / "table.md").read_text().splitlines()
    assert table[0] == "| Method | PSNR ↑ | SSIM ↑ | SIS ↑ | SIS, loss's network ↑ | MOS ↑ |"
    assert [line.split(" | ")[0].removeprefix("| ") for line in table[2:12]] == [
        "Ground truth", "Zero-filled", "DLMRI", "DAGAN", "RecNet", "RecNet + refinement",
        "RecNet, fine-tuned with MSE (λ = 0)", "RecNet + task loss (λ = 0.5)", "RecNet + observer loss",
        "RecNet + refinement + task loss"]
    assert table[2].startswith("| Ground truth | ∞ | 1.000 ± 0.000 |")
    assert all(line.endswith("| — |") for line in table[2:12])


def test_task_runs_use_the_segmentation_network_and_scoring_uses_another(study):
    runs = study / "csmri" / "runs"
    recnet_task = json.loads((runs / "recnet_task_0.5" / "evaluation" / "run.json").read_text())["loss"]
    assert recnet_task.startswith("MSE on the complex image + 0.5 x task loss (kl; weights kl=1) on "
                                  "lesion-segmentation UNet of run 'segmentation'")
    assert recnet_task.endswith(", fine-tuned from run 'recnet'")
    control = json.loads((runs / "recnet_finetuned" / "evaluation" / "run.json").read_text())["loss"]
    assert control == "MSE on the complex image (2 channels), fine-tuned from run 'recnet'"
    observer = json.loads((runs / "recnet_observer" / "evaluation" / "run.json").read_text())["loss"]
    assert observer == ("MSE on the complex image + 1 x CHO observer loss (LG 5 channels, width 4 px) of a disc of "
                        "radius 2 px, contrast 0.1, in 16 px ROIs (each term divided by its mean over the first 2 "
                        "batches), fine-tuned from run 'recnet'")
    refinement_task = json.loads((runs / "refinement_task" / "evaluation" / "run.json").read_text())["loss"]
    assert "1 x task loss (kl" in refinement_task
    scorer = (runs / "sis_segmentation" / "config.yaml").read_text()
    assert "seed: 1" in scorer and "network: segmentation_resnet" in scorer
    plans = csmri_plans(dict.fromkeys(["ground_truth", "zero_filled", "dlmri", "dagan", "recnet", "refinement",
                                        "recnet_finetuned", "recnet_task_0.5", "recnet_observer",
                                        "refinement_task"]))
    assert [plan.command("results/per_image.csv") for plan in plans] == [
        "taskloss compare results/per_image.csv --baseline recnet --method zero_filled --method dlmri --method dagan "
        "--method refinement --metric psnr --metric ssim --metric nmse --metric dice --metric sis --primary psnr "
        "--primary sis --ratio sis=dice/dice_truth --out comparisons/recnet",
        "taskloss compare results/per_image.csv --baseline recnet_finetuned --method recnet_task_0.5 "
        "--method recnet_observer --metric dice "
        "--metric psnr --metric ssim --metric sis --metric dice_loss_net --primary dice --primary psnr "
        "--ratio sis=dice/dice_truth --out comparisons/recnet_finetuned",
        "taskloss compare results/per_image.csv --baseline refinement --method refinement_task --metric dice "
        "--metric psnr --metric ssim --metric sis --metric dice_loss_net --primary dice --primary psnr "
        "--ratio sis=dice/dice_truth --out comparisons/refinement"]
    # At this scale the one-epoch ResNet scorer finds the one test lesion neither on the ground truth nor on
    # any reconstruction: SIS is undefined, so there is no PSNR-vs-SIS trade-off to draw (nor an SIS cell).
    assert not (study / "csmri" / "results" / "tradeoff.png").exists()
    assert all(line.split(" | ")[3] == "—" for line in (study / "csmri" / "results" / "table.md").read_text()
               .splitlines()[2:12])


def test_mos_from_a_reader_study_fills_the_column(study):
    results = study / "csmri" / "results"
    (results / "mos.csv").write_text("method,mos,sd,n_ratings,n_readers\nground_truth,4.5,0.5,6,2\n"
                                     "recnet,3.25,0.75,6,2\nrefinement,3.5,0.5,6,2\n")
    report = render_report(study).read_text()
    assert "## Compressed-sensing MRI (csmri)" in report
    table = (results / "table.md").read_text()
    assert "| 4.50 ± 0.50 |" in table and "| **3.50 ± 0.50** |" in table
    assert "Generalisation to real MR images" in report
    generalisation = (results / "generalisation.md").read_text()
    assert "| Zero-filled |" in generalisation and "| RecNet + refinement |" in generalisation
    (results / "mos.csv").unlink()


def test_the_numbers_are_those_of_the_study_before_the_presets_became_files(study, assert_golden):
    assert_golden("csmri", study / "csmri")


def test_fastmri_files_train_every_method_but_the_segmentation_and_task_loss_runs(tmp_path):
    """fastMRI files have no lesion labels: the study trains no segmentation network and no task-loss run
    (nothing to segment) and scores SIS as a dash, as docs/studies.md says."""
    rng = np.random.default_rng(0)
    (tmp_path / "h5").mkdir()
    for k in range(5):
        images = ndimage.gaussian_filter(rng.random((2, 72, 72)), (0, 3, 3)).astype(np.complex64)
        with h5py.File(tmp_path / "h5" / f"file{k}.h5", "w") as file:
            file["kspace"] = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"),
                                             axes=(-2, -1)).astype(np.complex64)  # fastMRI's centred k-space
            file["reconstruction_esc"] = np.abs(images[:, 4:68, 4:68]).astype(np.float32)  # its crop: 64 x 64
    run_csmri(TINY_FILE, tmp_path / "csmri", data_dir=tmp_path / "h5", accelerator="cpu")
    runs = sorted(p.name for p in (tmp_path / "csmri" / "runs").iterdir())
    assert runs == ["dagan", "recnet", "recnet_finetuned", "recnet_observer", "refinement"]
    results = tmp_path / "csmri" / "results"
    methods = [m["key"] for m in json.loads((results / "methods.json").read_text())["methods"]]
    assert methods == [*METHODS, "recnet_finetuned", "recnet_observer"]
    rows = list(csv.DictReader((results / "per_image" / "recnet.csv").read_text().splitlines()))
    assert rows and all(r["dice"] == r["dice_loss_net"] == "nan" and r["lesion"] == "0.0" for r in rows)
    assert all(line.split(" | ")[3] == "—" for line in (results / "table.md").read_text().splitlines()[2:9])
