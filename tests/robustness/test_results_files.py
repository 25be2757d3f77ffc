"""Result files a user may have edited or lost: one DataError naming the file, line and column."""

import pytest

from taskloss.errors import DataError
from taskloss.studies.common import read_per_image, read_study_json, write_per_image


def test_a_cell_that_is_not_a_number_names_file_line_and_column(tmp_path):
    path = tmp_path / "test.csv"
    write_per_image(path, ["a", "b"], {"mae": [0.1, 0.2], "ssim": [0.9, 0.8]})
    assert read_per_image(path)[0] == ["a", "b"]
    path.write_text(path.read_text().replace("0.8", "notanumber"))
    with pytest.raises(DataError, match=r"test.csv, line 3, column 'ssim': 'notanumber' is not a number"):
        read_per_image(path)


def test_a_missing_or_damaged_study_json_is_an_error_not_a_shorter_report(tmp_path):
    with pytest.raises(DataError, match=r"study.json is missing: the study in .* did not finish"):
        read_study_json(tmp_path)
    (tmp_path / "study.json").write_text("{")
    with pytest.raises(DataError, match="is not valid JSON"):
        read_study_json(tmp_path)
    (tmp_path / "study.json").write_text("[1]")
    with pytest.raises(DataError, match="holds list, not a JSON object"):
        read_study_json(tmp_path)
    (tmp_path / "study.json").write_text('{"preset": "demo"}')
    assert read_study_json(tmp_path) == {"preset": "demo"}


def test_a_read_only_study_database_is_named_read_only_not_damaged(tmp_path):
    import sqlite3

    from taskloss.readers.store import _unreadable

    path = tmp_path / "study.sqlite3"
    path.write_bytes(b"")
    message = str(_unreadable(path, sqlite3.OperationalError("attempt to write a readonly database")))
    assert "is read-only" in message and "backup" not in message
    assert "restore it from a backup" in str(_unreadable(path, sqlite3.DatabaseError("file is not a database")))
