"""The folder layout of a study, named once: every folder and file name a study writes or reads.

Every module of :mod:`taskloss.studies` (and the commands) takes these names from here. A study
folder ``OUT/<study>/``::

    study.yaml                           STUDY_FILE: a study file as run (study files only)
    study.json                           STUDY_RECORD: what a finished study recorded (preset, timings)
    runs/<run>/config.yaml               RUNS_DIR, RUN_CONFIG_FILE: the resolved run configuration
    runs/<run>/checkpoints/              CHECKPOINT_DIR: best.ckpt, last.ckpt (taskloss.training.engine)
    runs/<run>/evaluation/test.csv       EVALUATION_DIR, TEST_CSV: per-image metrics of the best checkpoint
    runs/<run>/evaluation/run.json       RUN_INFO_FILE: loss description, steps, best epoch, step time
    runs/<run>/evaluation/cases.npz      CASES_FILE: predictions of the figure's cases (mr2xray)
    runs/<run>/evaluation/test_predictions.npz   PREDICTIONS_FILE: every test prediction (study files)
    task_network/                        TASK_NETWORK_DIR: a study file's network inside the task loss
    segmentation/                        SCORER_DIR: a study file's scoring network (SIS, Dice)
    zero_filled/evaluation/test.csv      ZERO_FILLED_DIR: the zero-filled inputs scored (task: csmri)
    results/                             RESULTS_DIR: tables, tests, per-image results, figures

A report over several studies is ``OUT/report.md`` (:data:`REPORT_FILE`).
"""

RUNS_DIR = "runs"
"""``OUT/<study>/runs/<run>/``: one folder per trained run."""
RESULTS_DIR = "results"
"""``OUT/<study>/results/``: what the report renders (tables, tests, figures, per-image results)."""
RUN_CONFIG_FILE = "config.yaml"
"""A run's resolved configuration, in its run folder."""
CHECKPOINT_DIR = "checkpoints"
"""A run's checkpoints (``best.ckpt``, ``last.ckpt``), in its run folder."""
EVALUATION_DIR = "evaluation"
"""A run's scores, in its run folder."""
TEST_CSV = "test.csv"
"""Per-image metrics on the test split, in ``evaluation/``."""
CASES_FILE = "cases.npz"
"""Predictions of the figure's cases, in ``evaluation/``."""
PREDICTIONS_FILE = "test_predictions.npz"
"""Every test prediction of a study file's run (``ids``, ``pred``), in ``evaluation/``."""
STUDY_FILE = "study.yaml"
"""The study file as run, kept in ``OUT/<name>/`` (``taskloss report`` renders from it)."""
TASK_NETWORK_DIR = "task_network"
"""``OUT/<name>/task_network/``: the segmentation network a study file's task term uses."""
SCORER_DIR = "segmentation"
"""``OUT/<name>/segmentation/``: the segmentation network that scores a study file's runs (Dice, SIS)."""
ZERO_FILLED_DIR = "zero_filled"
"""``OUT/<name>/zero_filled/``: the scores of the zero-filled inputs (``task: csmri``)."""
