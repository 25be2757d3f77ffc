"""``taskloss observe``: the written CSV equals the library's detectability; the figure is a PNG; each bad input is
one line naming the file or folder, exit 2, nothing written; a locked folder is refused as by other commands."""

import csv
import math
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from taskloss.cli import app
from taskloss.cli.observe import COLUMNS
from taskloss.data.signals import Signal
from taskloss.locks import LOCK_FILE
from taskloss.observers import detectability

SIDE = 12
WIDTH = 1.5 * math.sqrt(2 * math.pi)


@pytest.fixture
def folders(tmp_path):
    """40 signal-present ROIs as single .npy files, 40 signal-absent ones as one stack (N, H, W)."""
    rng = np.random.default_rng(0)
    signal = Signal("gaussian", 1.5, 0.6).roi((SIDE, SIDE))
    present, absent = tmp_path / "present", tmp_path / "absent"
    present.mkdir()
    absent.mkdir()
    present_images = (rng.normal(size=(40, SIDE, SIDE)) + signal).astype(np.float32)
    for i, image in enumerate(present_images):
        np.save(present / f"roi{i:02d}.npy", image)
    absent_images = rng.normal(size=(40, SIDE, SIDE)).astype(np.float32)
    np.save(absent / "stack.npy", absent_images)
    return present, absent, present_images.astype(np.float64), absent_images.astype(np.float64)




def test_writes_the_librarys_detectability_and_an_roc_figure(tmp_path, folders):
    present, absent, present_images, absent_images = folders
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["observe", str(present), str(absent), "--out", str(out), "--observer", "cho",
                                      "--channels", "laguerre-gauss", "--channels", "dog", "--channel-width",
                                      str(WIDTH), "--observer", "npw", "--seed", "3"])
    assert result.exit_code == 0, result.output
    with open(out / "detectability.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["observer"], r["channels"]) for r in rows] == [("cho", "laguerre-gauss"), ("cho", "dog"), ("npw", "")]
    expected = [detectability(present_images, absent_images, "cho", channels="laguerre-gauss", channel_width=WIDTH,
                              seed=3),
                detectability(present_images, absent_images, "cho", channels="dog", seed=3),
                detectability(present_images, absent_images, "npw", seed=3)]
    for row, e in zip(rows, expected, strict=True):
        assert [float(row[k]) for k in ("auc", "auc_ci_low", "auc_ci_high", "dprime", "dprime_ci_low",
                                        "dprime_ci_high")] == pytest.approx([e.auc, *e.auc_ci, e.snr, *e.snr_ci],
                                                                            rel=1e-5)
        assert (int(row["n_present"]), int(row["n_absent"]), int(row["n_channels"])) == (40, 40, e.n_channels)
    assert float(rows[0]["auc"]) > 0.7  # the signal is seen
    figure = iio.imread(out / "roc.png")
    assert figure.ndim == 3 and min(figure.shape[:2]) > 500
    assert sorted(os.listdir(out)) == ["detectability.csv", "roc.png"]


def test_png_rois_are_read_too(tmp_path, taskloss_cli):
    rng = np.random.default_rng(1)
    for name, shift in (("present", 40), ("absent", 0)):
        (tmp_path / name).mkdir()
        for i in range(8):
            iio.imwrite(tmp_path / name / f"{i}.png", rng.integers(0, 200, (SIDE, SIDE)).astype(np.uint8) + shift)
    status, _, error = taskloss_cli("observe", str(tmp_path / "present"), str(tmp_path / "absent"), "--out",
                         str(tmp_path / "out"), "--observer", "npw")
    assert status == 0, error
    with open(tmp_path / "out" / "detectability.csv", newline="") as file:
        assert float(next(csv.DictReader(file))["auc"]) == 1.0  # every present ROI is brighter by 40


def _bad_cases(present, absent):
    """(setup, extra options, expected start of the message) of each bad input."""
    return [
        (lambda: np.save(present / "roi05.npy", np.zeros((SIDE, SIDE - 1), np.float32)), [],
         f"{present / 'roi05.npy'} is 12 x 11 but {present / 'roi00.npy'} is 12 x 12; crop every image to the same"),
        (lambda: np.save(absent / "stack.npy", np.random.default_rng(2).normal(size=(40, SIDE + 2, SIDE + 2))), [],
         f"the images of {present} are 12 x 12 but those of {absent} are 14 x 14; crop both to the same ROI size"),
        (lambda: np.save(present / "roi03.npy", np.full((SIDE, SIDE), np.nan, np.float32)), [],
         f"{present / 'roi03.npy'} holds 144 NaN or infinite values; save finite intensities"),
        (lambda: np.save(absent / "stack.npy", np.ones((40, SIDE, SIDE), np.float32)), [],
         f"{absent}: all 40 images are identical (a constant image set); the observer needs one independent noise"),
        (lambda: [p.unlink() for p in present.iterdir()], [],
         f"{present} holds no image files (.npy, .png, .tif, .tiff, .dcm, .nii, .nii.gz); put one ROI (H, W)"),
        (lambda: [np.save(absent / "stack.npy", np.random.default_rng(2).normal(size=(6, SIDE, SIDE))),
                  *(p.unlink() for p in sorted(present.iterdir())[6:])], [],
         f"{present} vs {absent}: observer='cho' with 5 laguerre-gauss channels (independent on this ROI) needs at "
         "least 8 images per class"),
        (lambda: None, ["--observer", "ideal"], "--observer ideal: unknown; use one of npw, npwe, hotelling, cho"),
        (lambda: None, ["--channels", "zernike"], "--channels zernike: unknown; use one of laguerre-gauss, gabor, dog"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_each_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, folders, case, taskloss_cli):
    present, absent, _, _ = folders
    setup, options, message = _bad_cases(present, absent)[case]
    setup()
    out = tmp_path / "out"
    width = [] if "--channels" in options or "--observer" in options else ["--channel-width", str(WIDTH)]
    status, _, error = taskloss_cli("observe", str(present), str(absent), "--out", str(out), *width, *options)
    assert status == 2
    assert error.startswith(f"taskloss: error: {message}"), error
    assert error.count("\n") == 1
    assert not out.exists()


def test_laguerre_gauss_without_a_width_is_refused_before_reading(tmp_path, folders, taskloss_cli):
    present, absent, _, _ = folders
    status, _, error = taskloss_cli("observe", str(present), str(absent), "--out", str(tmp_path / "out"))
    assert status == 2 and error == ("taskloss: error: --observer cho with --channels laguerre-gauss needs "
                                     "--channel-width (pixels): about 2/3 of a disc signal's radius, or 2.5 x a "
                                     "Gaussian signal's standard deviation\n")


HOLDER = ("import sys, time; from pathlib import Path; from taskloss.locks import locked_folder\n"
          "with locked_folder(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n")


def test_a_folder_that_another_process_writes_is_refused_and_left_alone(tmp_path, folders, taskloss_cli):
    present, absent, _, _ = folders
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        status, _, error = taskloss_cli("observe", str(present), str(absent), "--out", str(out), "--channel-width",
                             str(WIDTH))
        assert status == 2
        assert error == (f"taskloss: error: --out {out} is in use by taskloss process {holder.pid} (lock file "
                         f"{out / LOCK_FILE}); wait for it to finish or choose another folder (two runs writing one "
                         "folder would corrupt its logs)\n")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
