"""Run logs: CSV files (one row per logged step or epoch) and TensorBoard events.

The CSV writer is hand-written rather than Lightning's ``CSVLogger`` because a resumed run must
drop the rows it is about to log again (steps after the checkpoint it resumes from); Lightning's
logger starts a new version folder instead, which splits one run's curve over several files.
"""

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class CSVLog:
    """Append-only CSV of ``step`` plus named float values; columns grow as new names appear.

    Args:
        path: the CSV file; created with a header on the first row.
        resume_step: when resuming, rows with ``step`` greater than this are removed first.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, str]] = []
        if path.is_file():
            with open(path, newline="") as handle:
                self.rows = [row for row in csv.DictReader(handle)
                             if resume_step is None or int(row["step"]) <= resume_step]
            self._rewrite()

    def log(self, step: int, values: dict[str, float]) -> None:
        """Append one row; rewrites the file when a new column appears."""
        row = {"step": str(step), **{key: f"{value:.6g}" for key, value in values.items()}}
        new_columns = set(row) - set(self._columns())
        self.rows.append(row)
        if new_columns or not self.path.is_file():
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self._columns()).writerow(row)

    def _columns(self) -> list[str]:
        columns: dict[str, None] = {"step": None}
        for row in self.rows:
            columns.update(dict.fromkeys(row))
        return list(columns)

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns())
            writer.writeheader()
            writer.writerows(self.rows)


class RunLogger:
    """The logs of one run folder: ``train_log.csv``, ``val_log.csv`` and ``tensorboard/``.

    Only the process of rank 0 writes; on other ranks every call does nothing.
    """

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None = None) -> None:
        self.enabled = enabled
        if not enabled:
            return
        self.train = CSVLog(run_dir / "train_log.csv", resume_step)
        self.val = CSVLog(run_dir / "val_log.csv", resume_step)
        self._tensorboard_dir = run_dir / "tensorboard"
        self._resume_step = resume_step
        self._writer: SummaryWriter | None = None

    @property
    def tensorboard(self) -> SummaryWriter:
        """The TensorBoard writer, created at the first value logged.

        TensorBoard's event files are append-only records that a new writer cannot extend, so each
        attempt that logs something adds one file (TensorBoard merges the files of a folder, and
        ``purge_step`` hides the steps a resumed run logs again). Creating the writer lazily keeps
        attempts that fail or are killed before their first logged step from adding empty files.
        """
        if self._writer is None:
            self._writer = SummaryWriter(str(self._tensorboard_dir), purge_step=self._resume_step)
        return self._writer

    def log_train(self, step: int, values: dict[str, float]) -> None:
        """Training losses of one step."""
        if self.enabled:
            self.train.log(step, values)
            for key, value in values.items():
                self.tensorboard.add_scalar(f"train/{key}", value, step)

    def log_val(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Validation means after an epoch."""
        if self.enabled:
            self.val.log(step, {"epoch": float(epoch), **values})
            for key, value in values.items():
                self.tensorboard.add_scalar(f"val/{key}", value, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self.enabled and self._writer is not None:
            self._writer.close()
