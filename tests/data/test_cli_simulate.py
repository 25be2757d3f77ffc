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
        "taskloss: error: acceleration must be >= 1 (1 = fully sampled), got 0.5"]
