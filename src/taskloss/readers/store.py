"""The SQLite store of a reader study: methods, anonymous images, readers, their orders and ratings.

One study is one folder: ``study.sqlite3`` (this store) and ``images/<image_id>.npy`` (the images
under their anonymous ids). The database runs in WAL mode so readers rate while the admin reads, with
``synchronous = FULL`` so that a rating is on disk when its statement returns: a killed server, or a
machine that loses power, keeps every rating that a reader saw acknowledged. Every statement is
parameterised; no value from a request is ever formatted into SQL.
"""

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from taskloss.errors import DataError, InputError
from taskloss.readers.scale import LikertScale

SCHEMA_VERSION = 1
DATABASE_NAME = "study.sqlite3"
IMAGES_FOLDER = "images"
BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another writer's lock before failing (writes take milliseconds)."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE methods (
    key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    position INTEGER NOT NULL UNIQUE
);
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    method_key TEXT NOT NULL REFERENCES methods (key),
    UNIQUE (case_id, method_key)
);
CREATE TABLE readers (
    reader_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE assignments (
    reader_id INTEGER NOT NULL REFERENCES readers (reader_id),
    position INTEGER NOT NULL,
    image_id TEXT NOT NULL REFERENCES images (image_id),
    PRIMARY KEY (reader_id, position),
    UNIQUE (reader_id, image_id)
);
CREATE TABLE ratings (
    reader_id INTEGER NOT NULL,
    image_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    rated_at TEXT NOT NULL,
    PRIMARY KEY (reader_id, image_id),
    FOREIGN KEY (reader_id, image_id) REFERENCES assignments (reader_id, image_id)
);
"""


@dataclass(frozen=True)
class StudyInfo:
    """The settings of a study, fixed when it is created.

    Attributes:
        results_dir: absolute path of the results folder the images came from (``mos`` writes
            ``mos.csv`` there too).
        scale: the rating scale.
        rubric: the instructions shown to readers beside every image.
        seed: the seed of the case selection and of every reader's order.
        created_at: UTC creation time, ISO 8601.
    """

    results_dir: Path
    scale: LikertScale
    rubric: str
    seed: int
    created_at: str


@dataclass(frozen=True)
class Method:
    """A method of the results folder: its key (folder name) and display label."""

    key: str
    label: str


@dataclass(frozen=True)
class StudyImage:
    """One image of the study: anonymous id, the case it shows and the method that made it."""

    image_id: str
    case_id: str
    method: str


@dataclass(frozen=True)
class ReaderPlan:
    """A reader as created: name, hash of the secret token, and image ids in rating order."""

    name: str
    token_hash: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class Item:
    """One entry of a reader's list: 0-based position, anonymous image id, current score or None."""

    position: int
    image_id: str
    score: int | None


@dataclass(frozen=True)
class ReaderProgress:
    """How far a reader is: images rated of total, and the time of the latest rating (or None)."""

    name: str
    rated: int
    total: int
    last_rated_at: str | None


@dataclass(frozen=True)
class Rating:
    """One stored rating with everything the analysis needs (never sent to a reader)."""

    reader: str
    image_id: str
    case_id: str
    method: str
    score: int
    rated_at: str


def utc_now() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: each statement is its own transaction, committed (and, with synchronous =
    # FULL, synced) when execute() returns; multi-statement writes use Store._transaction().
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _unreadable(path: Path, error: sqlite3.Error) -> DataError:
    if _read_only(path, error):
        return DataError(f"{path} or its folder is read-only ({error}); the study database needs write "
                         "access even to be read (SQLite's WAL journal): make both writable, or copy the "
                         "study folder somewhere writable")
    return DataError(f"{path} is not a readable study database ({error}); restore it from a backup or "
                     "create the study again")


def _read_only(path: Path, error: sqlite3.Error) -> bool:
    if "readonly" in str(error) or "unable to open" in str(error):
        return True
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


class Store:
    """Access to one study's database. Open one per thread (or request) and close it after use."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def create(
        cls,
        study_dir: Path,
        info: StudyInfo,
        methods: Sequence[Method],
        images: Sequence[StudyImage],
        readers: Sequence[ReaderPlan],
        admin_token_hash: str,
    ) -> "Store":
        """Create the database of a new study in ``study_dir`` in one transaction.

        Args:
            study_dir: an existing folder without a database.
            info: the study's settings.
            methods: every method in table order (ground truth included).
            images: every image of the study.
            readers: every reader with token hash and order.
            admin_token_hash: SHA-256 hex digest of the admin token.

        Returns:
            The open store.
        """
        connection = _connect(study_dir / DATABASE_NAME)
        connection.execute("PRAGMA journal_mode = WAL")
        store = cls(connection)
        with store._transaction():
            # One execute per statement: executescript() would commit the open transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            meta = {"schema_version": str(SCHEMA_VERSION), "results_dir": str(info.results_dir),
                    "scale": str(info.scale), "rubric": info.rubric, "seed": str(info.seed),
                    "created_at": info.created_at, "admin_token_hash": admin_token_hash}
            connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            connection.executemany("INSERT INTO methods (key, label, position) VALUES (?, ?, ?)",
                                   [(m.key, m.label, i) for i, m in enumerate(methods)])
            connection.executemany("INSERT INTO images (image_id, case_id, method_key) VALUES (?, ?, ?)",
                                   [(i.image_id, i.case_id, i.method) for i in images])
            for reader_id, reader in enumerate(readers, start=1):
                connection.execute("INSERT INTO readers (reader_id, name, token_hash) VALUES (?, ?, ?)",
                                   (reader_id, reader.name, reader.token_hash))
                connection.executemany(
                    "INSERT INTO assignments (reader_id, position, image_id) VALUES (?, ?, ?)",
                    [(reader_id, position, image_id) for position, image_id in enumerate(reader.order)])
        return store

    @classmethod
    def open(cls, study_dir: Path) -> "Store":
        """Open the study in ``study_dir``, checking that it is one.

        Raises:
            DataError: when the folder or its database is missing, corrupt, or of another version.
        """
        path = Path(study_dir) / DATABASE_NAME
        if not path.is_file():
            raise DataError(f"{study_dir} is not a reader study (no {DATABASE_NAME}); create one with "
                            "`taskloss readers create STUDY_DIR --from RESULTS_DIR`")
        try:
            store = cls(_connect(path))
        except sqlite3.DatabaseError as error:
            raise _unreadable(path, error) from None
        try:
            version = store._meta("schema_version")
        except sqlite3.DatabaseError as error:
            store.close()
            raise _unreadable(path, error) from None
        if version != str(SCHEMA_VERSION):
            store.close()
            raise DataError(f"{path} has schema version {version}, this taskloss reads version "
                            f"{SCHEMA_VERSION}; use the taskloss version that created it")
        return store

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise sqlite3.DatabaseError(f"meta entry {key!r} is missing")
        return str(row[0])

    def info(self) -> StudyInfo:
        """The study's settings."""
        low, high = self._meta("scale").split("-")
        return StudyInfo(results_dir=Path(self._meta("results_dir")),
                         scale=LikertScale(int(low), int(high)), rubric=self._meta("rubric"),
                         seed=int(self._meta("seed")), created_at=self._meta("created_at"))

    def journal_mode(self) -> str:
        """SQLite's journal mode of the database (``"wal"`` for every study)."""
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    def admin_token_hash(self) -> str:
        """SHA-256 hex digest of the admin token."""
        return self._meta("admin_token_hash")

    def reader_token_hashes(self) -> list[tuple[int, str]]:
        """``(reader_id, token_hash)`` of every reader."""
        return [(int(r), str(h)) for r, h in self._db.execute("SELECT reader_id, token_hash FROM readers")]

    def replace_token_hash(self, name: str | None, token_hash: str) -> None:
        """Replace the token hash of reader ``name``, or of the admin when ``name`` is None.

        Raises:
            InputError: when no reader has that name.
        """
        if name is None:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'admin_token_hash'", (token_hash,))
            return
        cursor = self._db.execute("UPDATE readers SET token_hash = ? WHERE name = ?", (token_hash, name))
        if cursor.rowcount != 1:
            raise InputError(f"the study has no reader {name!r}; its readers are "
                             f"{', '.join(self.reader_names())}")

    def reader_name(self, reader_id: int) -> str:
        """The name of reader ``reader_id``."""
        return str(self._db.execute("SELECT name FROM readers WHERE reader_id = ?",
                                    (reader_id,)).fetchone()[0])

    def methods(self) -> list[Method]:
        """Every method in table order."""
        rows = self._db.execute("SELECT key, label FROM methods ORDER BY position")
        return [Method(str(key), str(label)) for key, label in rows]

    def images(self) -> list[StudyImage]:
        """Every image, by case then method position."""
        rows = self._db.execute(
            "SELECT i.image_id, i.case_id, i.method_key FROM images i "
            "JOIN methods m ON m.key = i.method_key ORDER BY i.case_id, m.position")
        return [StudyImage(str(i), str(c), str(m)) for i, c, m in rows]

    def reader_names(self) -> list[str]:
        """Every reader's name, in creation order."""
        return [str(name) for (name,) in self._db.execute("SELECT name FROM readers ORDER BY reader_id")]

    def items(self, reader_id: int) -> list[Item]:
        """Reader ``reader_id``'s images in rating order with their current scores."""
        rows = self._db.execute(
            "SELECT a.position, a.image_id, r.score FROM assignments a LEFT JOIN ratings r "
            "ON r.reader_id = a.reader_id AND r.image_id = a.image_id "
            "WHERE a.reader_id = ? ORDER BY a.position", (reader_id,))
        return [Item(int(p), str(i), None if s is None else int(s)) for p, i, s in rows]

    def is_assigned(self, reader_id: int, image_id: str) -> bool:
        """Whether ``image_id`` is in reader ``reader_id``'s list."""
        row = self._db.execute("SELECT 1 FROM assignments WHERE reader_id = ? AND image_id = ?",
                               (reader_id, image_id)).fetchone()
        return row is not None

    def rate(self, reader_id: int, image_id: str, score: int) -> bool:
        """Store (or replace) a reader's score of an image; durable when this returns.

        The caller checks ``score`` against the scale. The insert selects from the reader's own
        assignments, so an image outside the reader's list cannot be rated.

        Returns:
            False when ``image_id`` is not in the reader's list (nothing is stored), else True.
        """
        cursor = self._db.execute(
            "INSERT INTO ratings (reader_id, image_id, score, rated_at) "
            "SELECT reader_id, image_id, ?, ? FROM assignments WHERE reader_id = ? AND image_id = ? "
            "ON CONFLICT (reader_id, image_id) DO UPDATE SET score = excluded.score, "
            "rated_at = excluded.rated_at",
            (score, utc_now(), reader_id, image_id))
        return cursor.rowcount == 1

    def rated_count(self, reader_id: int) -> int:
        """How many images reader ``reader_id`` has rated."""
        return int(self._db.execute("SELECT COUNT(*) FROM ratings WHERE reader_id = ?",
                                    (reader_id,)).fetchone()[0])

    def progress(self) -> list[ReaderProgress]:
        """Every reader's progress, in creation order."""
        rows = self._db.execute(
            "SELECT d.name, (SELECT COUNT(*) FROM ratings r WHERE r.reader_id = d.reader_id), "
            "(SELECT COUNT(*) FROM assignments a WHERE a.reader_id = d.reader_id), "
            "(SELECT MAX(rated_at) FROM ratings r WHERE r.reader_id = d.reader_id) "
            "FROM readers d ORDER BY d.reader_id")
        return [ReaderProgress(str(n), int(r), int(t), None if last is None else str(last))
                for n, r, t, last in rows]

    def ratings(self) -> list[Rating]:
        """Every stored rating, by reader then case then method position."""
        rows = self._db.execute(
            "SELECT d.name, i.image_id, i.case_id, i.method_key, r.score, r.rated_at "
            "FROM ratings r JOIN readers d ON d.reader_id = r.reader_id "
            "JOIN images i ON i.image_id = r.image_id JOIN methods m ON m.key = i.method_key "
            "ORDER BY d.reader_id, i.case_id, m.position")
        return [Rating(str(n), str(i), str(c), str(m), int(s), str(t)) for n, i, c, m, s, t in rows]
