import subprocess
import sys

from typer.testing import CliRunner

from taskloss.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_user_error_is_one_line_and_exit_2():
    # A real process, so the console-script error handling (taskloss.cli.main) is what runs.
    code = ("import sys; sys.argv=['taskloss','demo','--out','/dev/null/x']; "
            "from taskloss.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "taskloss: error: Not a directory: /dev/null/x; check the path and its permissions"]
