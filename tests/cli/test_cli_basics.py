import subprocess
import sys

import pytest
from typer.testing import CliRunner

from taskloss.cli import app, main

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "simulate", "study", "train", "evaluate", "report", "readers", "train-perception"):
        assert command in result.output


def test_user_error_is_one_line_and_exit_2():
    # A real process, so the console-script error handling (taskloss.cli.main) is what runs.
    code = ("import sys; sys.argv=['taskloss','demo','--out','/dev/null/x']; "
            "from taskloss.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "taskloss: error: --out /dev/null/x: /dev/null is not a folder; choose a folder path"]


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``taskloss.cli.main`` in this process; return (exit status, stderr)."""

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["taskloss", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        return exit_info.value.code, capsys.readouterr().err

    return run


def test_config_errors_name_the_file_and_key(tmp_path, run_cli):
    status, error = run_cli("train", str(tmp_path / "none.yaml"))
    assert status == 2 and "none.yaml does not exist" in error
    config = tmp_path / "run.yaml"
    config.write_text("study: mr2xray\nnetwork: unet\nloss: l1\ntraining:\n  epochz: 3\n")
    status, error = run_cli("train", str(config))
    assert status == 2
    assert error.strip() == (f"taskloss: error: {config}: training: unknown key 'epochz'; choose one of epochs, "
                             "batch_size, seed, accelerator, devices, num_nodes, precision, num_workers, "
                             "checkpoint_every_steps, log_every_steps, monitor, monitor_mode, grad_clip, progress, "
                             "deterministic, optimizer")
    config.write_text("study: nonsense\n")
    assert "key 'study' must be one of mr2xray, csmri" in run_cli("train", str(config))[1]
    assert "is not of the form key=value" in run_cli("train", str(config), "training.epochs")[1]


def test_report_and_evaluate_on_empty_folders_fail_cleanly(tmp_path, run_cli):
    status, error = run_cli("report", str(tmp_path))
    assert status == 2 and "holds no study results" in error
    status, error = run_cli("evaluate", str(tmp_path))
    assert status == 2 and "config.yaml does not exist" in error
