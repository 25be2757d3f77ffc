"""``taskloss readers create / mos``: printed links, written files, one-line errors."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloss.cli import app
from taskloss.errors import TasklossError
from taskloss.readers import Store
from taskloss.readers.tokens import hash_token, matching_key

runner = CliRunner()
LINK = re.compile(r"^  (\S+): http://study\.example:9000/(r|admin)/(\S+)$", re.MULTILINE)


def test_create_prints_each_link_once_and_stores_only_hashes(tmp_path: Path, results_dir: Path) -> None:
    study_dir = tmp_path / "study"
    result = runner.invoke(app, ["readers", "create", str(study_dir), "--from", str(results_dir),
                                 "--cases", "2", "--readers", "ann,ben,cat", "--scale", "1-4",
                                 "--seed", "3", "--base-url", "http://study.example:9000/"])
    assert result.exit_code == 0, result.output
    assert "2 cases x 4 methods = 8 images per reader, scale 1-4" in result.output
    links = {name: (kind, token) for name, kind, token in LINK.findall(result.output)}
    assert set(links) == {"ann", "ben", "cat", "admin"}
    with Store.open(study_dir) as store:
        hashes = store.reader_token_hashes()
        assert [matching_key(links[name][1], hashes) for name in ("ann", "ben", "cat")] == [1, 2, 3]
        assert store.admin_token_hash() == hash_token(links["admin"][1])
        assert str(store.info().scale) == "1-4"


def test_mos_writes_study_and_results_files(tmp_path: Path, results_dir: Path) -> None:
    study_dir = tmp_path / "study"
    runner.invoke(app, ["readers", "create", str(study_dir), "--from", str(results_dir), "--seed", "0",
                        "--readers", "ann,ben"])
    with Store.open(study_dir) as store:
        for image in store.images():
            store.rate(1, image.image_id, 4 if image.method == "ground_truth" else 2)
            store.rate(2, image.image_id, 5 if image.method == "ground_truth" else 2)
    result = runner.invoke(app, ["readers", "mos", str(study_dir)])
    assert result.exit_code == 0, result.output
    assert "Ground truth" in result.output and "4.50 ± 0.53" in result.output
    assert "ICC(2,1)" in result.output and "Fleiss' kappa" in result.output
    for path in (study_dir / "mos.csv", results_dir / "mos.csv"):
        with path.open() as file:
            rows = {row["method"]: row for row in csv.DictReader(file)}
        assert float(rows["ground_truth"]["mos"]) == 4.5
        assert (rows["recnet"]["mos"], rows["recnet"]["sd"], rows["recnet"]["n_ratings"],
                rows["recnet"]["n_readers"]) == ("2.0", "0.0", "8", "2")
    assert (study_dir / "mos_pairs.csv").is_file() and (study_dir / "agreement.csv").is_file()


def test_mos_of_a_partial_study_says_so(tmp_path: Path, results_dir: Path) -> None:
    study_dir = tmp_path / "study"
    runner.invoke(app, ["readers", "create", str(study_dir), "--from", str(results_dir), "--seed", "0"])
    result = runner.invoke(app, ["readers", "mos", str(study_dir)])
    assert result.exit_code == 0
    assert "partial study: 0 of 48 ratings stored" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["create", "{tmp}/s", "--from", "{tmp}/none"], "does not exist; pass the --out folder"),
    (["create", "{tmp}/s", "--from", "{results}", "--scale", "5"], "is not of the form LOW-HIGH"),
    (["create", "{tmp}/s", "--from", "{results}", "--cases", "9"], "the results hold 4 cases"),
    (["create", "{tmp}/s", "--from", "{results}", "--readers", "a,a"], "lists a name twice"),
    (["mos", "{tmp}"], "is not a reader study"),
    (["serve", "{tmp}"], "is not a reader study"),
])
def test_user_errors_name_the_problem(tmp_path: Path, results_dir: Path, args: list[str],
                                      message: str) -> None:
    filled = [a.format(tmp=tmp_path, results=results_dir) for a in args]
    result = runner.invoke(app, ["readers", *filled])
    assert isinstance(result.exception, TasklossError)
    assert message in str(result.exception)


def test_user_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # A real process, so the console script's error handling (taskloss.cli.main) is what runs.
    code = (f"import sys; sys.argv = ['taskloss', 'readers', 'mos', {str(tmp_path)!r}]; "
            "from taskloss.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"taskloss: error: {tmp_path} is not a reader study (no study.sqlite3); create one with "
        "`taskloss readers create STUDY_DIR --from RESULTS_DIR`"]


def test_relink_replaces_a_lost_link(tmp_path: Path, results_dir: Path) -> None:
    study_dir = tmp_path / "study"
    created = runner.invoke(app, ["readers", "create", str(study_dir), "--from", str(results_dir),
                                  "--readers", "ann,ben", "--base-url", "http://study.example:9000"])
    old = {name: token for name, _, token in LINK.findall(created.output)}
    result = runner.invoke(app, ["readers", "relink", str(study_dir), "--reader", "ben",
                                 "--base-url", "http://study.example:9000"])
    assert result.exit_code == 0, result.output
    new_token = LINK.search(result.output.replace("  http", "  ben: http")).group(3)
    with Store.open(study_dir) as store:
        hashes = store.reader_token_hashes()
    assert matching_key(new_token, hashes) == 2
    assert matching_key(old["ben"], hashes) is None
    assert matching_key(old["ann"], hashes) == 1
    admin = runner.invoke(app, ["readers", "relink", str(study_dir), "--admin",
                                "--base-url", "http://study.example:9000"])
    admin_token = admin.output.strip().rsplit("/admin/", 1)[1]
    with Store.open(study_dir) as store:
        assert store.admin_token_hash() == hash_token(admin_token) != hash_token(old["admin"])


@pytest.mark.parametrize(("args", "message"), [
    (["--reader", "zed"], "has no reader 'zed'; its readers are reader-1, reader-2, reader-3"),
    ([], "pass either --reader NAME or --admin"),
    (["--reader", "reader-1", "--admin"], "pass either --reader NAME or --admin"),
])
def test_relink_refuses_bad_choices(tmp_path: Path, results_dir: Path, args: list[str], message: str) -> None:
    study_dir = tmp_path / "study"
    runner.invoke(app, ["readers", "create", str(study_dir), "--from", str(results_dir)])
    result = runner.invoke(app, ["readers", "relink", str(study_dir), *args])
    assert isinstance(result.exception, TasklossError)
    assert message in str(result.exception)
