"""``taskloss simulate``: files written, preview, and a one-line error with exit status 2."""

import csv
import json
import subprocess
import sys

from typer.testing import CliRunner

from taskloss.cli import app

runner = CliRunner()


def test_simulate_mr2xray_writes_pairs_index_config_and_preview(tmp_path):
    result = runner.invoke(app, ["simulate", "mr2xray", "--out", str(tmp_path), "--subjects", "3", "--angles",
                                 "2", "--size", "16", "--anatomy", "ellipsoid", "--preview"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "index.csv").open()))
    assert [r["id"] for r in rows[:2]] == ["s000_a000.0", "s000_a090.0"] and len(rows) == 6
    for folder in ("input", "target"):
        assert len(list((tmp_path / folder).glob("*.npy"))) == 6
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == "mr2xray" and config["settings"]["seed"] == 0
    assert (tmp_path / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_simulate_csmri_writes_slices_and_preview(tmp_path):
    result = runner.invoke(app, ["simulate", "csmri", "--out", str(tmp_path), "--subjects", "3", "--slices",
                                 "2", "--size", "32", "--acceleration", "4", "--anatomy", "ellipsoid",
                                 "--preview"])
    assert result.exit_code == 0, result.output
    assert "wrote 6 slices (train 2, val 2, test 2)" in result.output
    assert len(list((tmp_path / "images").glob("*.npy"))) == 6
    assert (tmp_path / "preview.png").is_file()


def test_bad_argument_is_one_line_and_exit_2(tmp_path):
    code = ("import sys; sys.argv = ['taskloss', 'simulate', 'csmri', '--out', sys.argv[1], "
            "'--acceleration', '0.5']; from taskloss.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "taskloss: error: taskloss simulate csmri: acceleration must be >= 1 (1 = fully sampled), got 0.5"]


def _simulate(out, *extra: str):
    return runner.invoke(app, ["simulate", "mr2xray", "--out", str(out), "--subjects", "3", "--angles", "1",
                               "--size", "8", "--anatomy", "ellipsoid", *extra])


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_simulate_into_a_dataset_is_refused_and_overwrite_replaces_it_whole(tmp_path):
    out = tmp_path / "data"
    assert _simulate(out, "--subjects", "5").exit_code == 0
    before = _tree(out)
    refused = _simulate(out, "--seed", "4")
    assert refused.exit_code == 1 and isinstance(refused.exception, ValueError)
    assert str(refused.exception) == (f"--out {out} already holds a dataset; choose a new folder, or pass "
                                      "--overwrite to replace it whole")
    assert _tree(out) == before
    assert _simulate(out, "--seed", "4", "--overwrite").exit_code == 0
    assert len(list((out / "input").iterdir())) == 3, "the 5-subject dataset's files must all be gone"
    assert json.loads((out / "config.json").read_text())["settings"]["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "no temporary folder may stay"


def test_simulate_never_writes_into_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = _simulate(tmp_path, "--overwrite")
    assert "holds other files (not a taskloss dataset)" in str(result.exception)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_non_finite_numbers_and_sizes_beyond_memory_are_refused_before_simulating(tmp_path):
    for option, value in (("--photons", "nan"), ("--photons", "inf"), ("--photons", "-1")):
        result = _simulate(tmp_path / "x", option, value)
        assert result.exit_code == 2 and "Invalid value for '--photons'" in result.output
    result = runner.invoke(app, ["simulate", "csmri", "--out", str(tmp_path / "x"), "--acceleration", "inf"])
    assert result.exit_code == 2 and "inf is not a finite number" in result.output
    result = _simulate(tmp_path / "x", "--size", "10000000")
    assert "choose a smaller --size or fewer --subjects" in str(result.exception)
    assert list(tmp_path.iterdir()) == []
