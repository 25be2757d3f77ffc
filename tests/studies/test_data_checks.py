"""Degenerate data refused before any training, naming the file: constant (all-zero) images, a name
in two formats, a target that links to its input, label maps of one value, a blank fastMRI slice,
values that overflow float32; targets equal to their inputs warned about once."""

import contextlib
import io
import sys
import warnings
from unittest import mock

import h5py
import numpy as np
import pytest
import yaml

from taskloss.cli import main
from taskloss.data.sources import DataSpec, KspaceDataSpec
from taskloss.data.sources.fastmri import read_kspace_pairs
from taskloss.data.sources.folders import read_paired
from taskloss.data.sources.pairs import WARNED
from taskloss.errors import DataError
from taskloss.studies.engine import train_file_run
from taskloss.studies.spec import FileRun
from taskloss.training import TrainingConfig

SIZE = 16


def make_pairs(folder, count=6, seed=0):
    """``count`` random pairs ``s<k>_0.npy`` (float32, 16 x 16) in input/ and target/."""
    rng = np.random.default_rng(seed)
    for name in ("input", "target"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        np.save(folder / "input" / f"s{k}_0.npy", rng.random((SIZE, SIZE), np.float32))
        np.save(folder / "target" / f"s{k}_0.npy", rng.random((SIZE, SIZE), np.float32))
    return folder


def refusal(folder) -> str:
    with pytest.raises(DataError) as caught:
        read_paired(DataSpec(path=folder, size=SIZE))
    return str(caught.value)


def invoke(args, cwd):
    """``taskloss ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), mock.patch.object(sys, "argv", ["taskloss", *args]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            status = 0
        except SystemExit as error:
            status = error.code
    return status, out.getvalue(), err.getvalue()


def test_a_constant_target_study_is_refused_in_one_line_before_training_and_leaves_nothing(tmp_path):
    pairs = make_pairs(tmp_path / "pairs")
    np.save(pairs / "target" / "s3_0.npy", np.full((SIZE, SIZE), 0.25, np.float32))
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "flat", "data": {"path": "pairs", "size": SIZE},
        "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}},
        "losses": {"l1": {"l1": 1.0}}, "training": {"epochs": 1, "batch_size": 2}}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _, err = invoke(["study", "run", "study.yaml", "--out", "out", "--accelerator", "cpu"], tmp_path)
    assert status == 2
    assert err.splitlines() == [
        f"taskloss: error: {pairs / 'target' / 's3_0.npy'} is constant (every pixel 0.25); a target must vary (the "
        "scaling to [0, 1], PSNR and SSIM divide by its range), replace the file or move it out of the folder"]
    assert not (tmp_path / "out").exists()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_all_zero_inputs_and_nearly_constant_images_are_refused(tmp_path):
    pairs = make_pairs(tmp_path / "zero")
    np.save(pairs / "input" / "s1_0.npy", np.zeros((SIZE, SIZE), np.float32))
    assert refusal(pairs).startswith(f"{pairs / 'input' / 's1_0.npy'} is all zero (every pixel 0); a network's "
                                     "input must vary")
    pairs = make_pairs(tmp_path / "near")
    # 1000 and the next float32 above it (1000 + 2**-14): a spread of 6.1e-8 of the magnitude, one rounding step.
    np.save(pairs / "target" / "s2_0.npy", 1000 + np.tile([0.0, 6.103515625e-05], SIZE * SIZE // 2).astype(
        np.float32).reshape(SIZE, SIZE))
    assert refusal(pairs).startswith(f"{pairs / 'target' / 's2_0.npy'} is constant (every pixel 1000)")


def test_one_name_in_two_formats_is_refused_naming_both_files(tmp_path):
    pairs = make_pairs(tmp_path / "pairs")
    import imageio.v3 as iio

    iio.imwrite(pairs / "input" / "s0_0.png", np.arange(SIZE * SIZE, dtype=np.uint8).reshape(SIZE, SIZE))
    assert refusal(pairs) == (f"{pairs / 'input'}: s0_0.npy and s0_0.png are both the image 's0_0', and a pair is "
                              "matched by name; keep one of them (move the other out of the folder)")


def test_a_target_that_links_to_its_input_is_refused(tmp_path):
    pairs = make_pairs(tmp_path / "pairs")
    (pairs / "target" / "s4_0.npy").unlink()
    (pairs / "target" / "s4_0.npy").symlink_to(pairs / "input" / "s4_0.npy")
    assert refusal(pairs).startswith(f"{pairs / 'target' / 's4_0.npy'} is a link to its input "
                                     f"{pairs / 'input' / 's4_0.npy'}; a target must be its own image")


def test_label_maps_that_all_hold_one_value_are_refused(tmp_path):
    pairs = make_pairs(tmp_path / "pairs")
    (pairs / "labels").mkdir()
    for k in range(6):
        np.save(pairs / "labels" / f"s{k}_0.npy", np.zeros((SIZE, SIZE), np.int64))
    assert refusal(pairs) == (f"{pairs / 'labels'}: every label map holds only the value 0; the task metric needs "
                              "a foreground class, fix the labels or remove the folder")


def test_targets_equal_to_their_inputs_are_warned_about_once(tmp_path, capsys):
    pairs = make_pairs(tmp_path / "pairs")
    for k in (1, 4):
        (pairs / "target" / f"s{k}_0.npy").write_bytes((pairs / "input" / f"s{k}_0.npy").read_bytes())
    WARNED.discard(str(pairs))
    for _ in range(2):
        data = read_paired(DataSpec(path=pairs, size=SIZE))
    assert len(data.ids) == 6
    assert capsys.readouterr().err.splitlines() == [
        f"taskloss: warning: {pairs}: 2 of 6 targets equal their inputs (first s1_0 in input/ and target/); the "
        "network learns nothing for them, check that the targets are the images you meant"]


def test_values_beyond_float32_are_a_data_error_not_a_numpy_warning(tmp_path):
    pairs = make_pairs(tmp_path / "pairs")
    np.save(pairs / "input" / "s0_0.npy", np.full((SIZE, SIZE), 1e300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning escaping the reader fails the test
        message = refusal(pairs)
    assert message == (f"{pairs / 'input' / 's0_0.npy'} is not a readable NumPy .npy file of float32 values "
                       "(RuntimeWarning: overflow encountered in cast); save values within float32's range (3.4e38)")


def test_a_blank_fastmri_slice_is_refused_naming_file_and_slice(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "h5").mkdir()
    for k in range(3):
        kspace = (rng.normal(size=(2, SIZE, SIZE)) + 1j * rng.normal(size=(2, SIZE, SIZE))).astype(np.complex64)
        if k == 1:
            kspace[1] = 0
        with h5py.File(tmp_path / "h5" / f"f{k}.h5", "w") as file:
            file["kspace"] = kspace
    with pytest.raises(DataError) as caught:
        read_kspace_pairs(KspaceDataSpec(path=tmp_path / "h5", size=SIZE, acceleration=2))
    assert str(caught.value).startswith(f"{tmp_path / 'h5' / 'f1.h5'}: slice 1 (at data.size {SIZE}) is all zero")


def test_train_checks_the_data_before_it_writes_the_run_folder(tmp_path):
    pairs = make_pairs(tmp_path / "pairs")
    np.save(pairs / "target" / "s0_0.npy", np.zeros((SIZE, SIZE), np.float32))
    run = FileRun(data=DataSpec(path=pairs, size=SIZE), network={"name": "unet", "options": {"widths": [4, 8]}},
                  loss={"l1": 1.0}, training=TrainingConfig(epochs=1, batch_size=2, accelerator="cpu"))
    with pytest.raises(DataError, match=r"s0_0.npy is all zero"):
        train_file_run(run, tmp_path / "run")
    assert not (tmp_path / "run").exists()
