"""Exclusive output folders, with two real processes: a holder (a separate Python process) sleeps
with a folder's lock; a taskloss command in this process into that folder exits 2 at once with one
line naming the folder and the holder's pid; ``kill -9`` of the holder leaves no lock that blocks
the next run."""

import contextlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import yaml

from taskloss.cli import main
from taskloss.cli.app import removed_on_failure
from taskloss.cli.simulate import check_out
from taskloss.errors import DataError
from taskloss.locks import LOCK_FILE, FolderInUseError, holder_pid, locked_folder

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from taskloss.locks import locked_folder
    with locked_folder(Path(sys.argv[1]), inside=sys.argv[2] == "inside"):
        print("locked", flush=True)
        time.sleep(120)
""")
STUDY = {"name": "s", "data": {"path": "pairs", "size": 16},
         "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}}, "losses": {"l1": {"l1": 1.0}}}


@contextlib.contextmanager
def holder(folder: Path, inside: bool = True):
    """A separate Python process that holds ``folder``'s lock until it is killed (SIGKILL at the end)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "inside" if inside else "beside"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.kill()
        process.wait()


def invoke(args, cwd):
    """``taskloss ARGS`` in this process (the holder is the other process): (status, stderr)."""
    err = io.StringIO()
    with contextlib.chdir(cwd), mock.patch.object(sys, "argv", ["taskloss", *args]), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main()
            status = 0
        except SystemExit as error:
            status = error.code
    return status, err.getvalue()


def busy(option: str, folder: Path, pid: int, lock: Path) -> list[str]:
    return [f"taskloss: error: {option} {folder} is in use by taskloss process {pid} (lock file {lock}); wait for it "
            "to finish or choose another folder (two runs writing one folder would corrupt its logs)"]


@pytest.mark.parametrize("args", [
    ["study", "run", "study.yaml", "--out", "out"],
    ["demo", "--out", "out"],
    ["study", "mr2xray", "--out", "out"],
    ["simulate", "mr2xray", "--out", "out", "--subjects", "3", "--angles", "1", "--size", "8"],
    ["train", "run.yaml", "--out", "out"],
])
def test_every_writing_command_is_refused_while_another_process_holds_its_folder(tmp_path, args):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"study": "file", "data": {"path": "pairs"},
                                                       "network": {"name": "unet"}, "loss": {"l1": 1.0},
                                                       "training": {"epochs": 1}}))
    with holder(tmp_path / "out") as process:
        status, err = invoke(args, tmp_path)
    assert status == 2
    assert err.splitlines() == busy("--out", Path("out"), process.pid, Path("out") / LOCK_FILE)


def test_readers_create_locks_a_file_beside_the_study_folder(tmp_path):
    with holder(tmp_path / "reading", inside=False) as process:
        status, err = invoke(["readers", "create", "reading", "--from", "results"], tmp_path)
    assert status == 2
    assert err.splitlines() == busy("STUDY_DIR", Path("reading"), process.pid, Path(".reading.taskloss.lock"))
    assert not (tmp_path / "reading").exists()


def test_kill_9_leaves_a_lock_file_that_no_one_holds_and_that_no_check_counts(tmp_path):
    out = tmp_path / "out"
    with holder(out) as process:
        assert holder_pid(out / LOCK_FILE) == process.pid
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert (out / LOCK_FILE).exists()  # the kernel dropped the lock; the file stays
    check_out(out, overwrite=False)  # simulate: a folder with only the stale lock file is empty
    with locked_folder(out) as lock:
        assert holder_pid(lock) == os.getpid()
    assert not lock.exists()
    (out / LOCK_FILE).write_text("12345\n")  # stale again: a failed run's clean-up still removes the folder
    with pytest.raises(DataError), removed_on_failure(out / "study"):
        (out / "study" / "runs" / "a").mkdir(parents=True)
        raise DataError("bad data")
    assert not (out / "study").exists()


def test_the_lock_is_reentrant_in_one_process_and_exclusive_between_descriptors(tmp_path):
    with locked_folder(tmp_path / "out") as lock, locked_folder(tmp_path / "out"):
        assert lock.exists()
        import fcntl

        other = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert not (tmp_path / "out").exists()  # made for the lock, empty again: removed


def test_a_refused_process_removes_nothing_of_the_holder(tmp_path):
    out = tmp_path / "out"
    # out is missing when this process looks; then the other process makes it and writes a run config
    with pytest.raises(FolderInUseError), removed_on_failure(out), holder(out):
        (out / "config.yaml").write_text("study: file\n")
        with locked_folder(out):
            pass
    assert (out / "config.yaml").exists()
