"""The folder layout of a study, named once: every folder and file name a study writes or reads.

Every module of :mod:`taskloss.studies` (and the commands) takes these names from here. A study
folder ``OUT/<study>/``::

    study.yaml                           STUDY_FILE: a study file as run (study files only)
    study.json                           STUDY_RECORD: what a finished study recorded (preset, timings)
    runs/<run>/config.yaml               RUNS_DIR, RUN_CONFIG_FILE: the resolved run configuration
    runs/<run>/checkpoints/              CHECKPOINT_DIR: best.ckpt, last.ckpt (taskloss.training.engine)
    runs/<run>/evaluation/test.csv       EVALUATION_DIR, TEST_CSV: per-image metrics of the best checkpoint
    runs/<run>/evaluation/run.json       RUN_INFO_FILE: loss, steps, best epoch, step time, provenance
    runs/<run>/evaluation/cases.npz      CASES_FILE: predictions of the figure's cases (mr2xray)
    runs/<run>/evaluation/test_predictions.npz   PREDICTIONS_FILE: every test prediction (study files)
    task_network/                        TASK_NETWORK_DIR: a study file's network inside the task loss
    segmentation/                        SCORER_DIR: a study file's scoring network (SIS, Dice)
    zero_filled/evaluation/test.csv      ZERO_FILLED_DIR: the zero-filled inputs scored (task: csmri)
    task_networks/bone/, bone_scorer/    TASK_NETWORKS_DIR, BONE_NETWORK, BONE_SCORER (mr2xray)
    results/                             RESULTS_DIR: tables, tests, per-image results, figures
    results/per_image.csv                PER_IMAGE_CSV: every method's per-image values

The networks inside a task loss and the networks that score the outputs are always different
runs: a study file's ``task_network/`` and ``segmentation/``; mr2xray's ``task_networks/bone`` and
``task_networks/bone_scorer``; csmri's runs ``segmentation`` and ``sis_segmentation``
(:data:`CSMRI_TASK_NETWORK_RUN`, :data:`CSMRI_SCORER_RUN`).

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
RUN_INFO_FILE = "run.json"
"""What training recorded (loss description, steps, best epoch, seconds per step), in ``evaluation/``."""
CASES_FILE = "cases.npz"
"""Predictions of the figure's cases, in ``evaluation/``."""
PREDICTIONS_FILE = "test_predictions.npz"
"""Every test prediction of a study file's run (``ids``, ``pred``), in ``evaluation/``."""
STUDY_RECORD = "study.json"
"""What a finished study recorded in its folder (preset, notes, timings); the report reads it."""
STUDY_FILE = "study.yaml"
"""The study file as run, kept in ``OUT/<name>/`` (``taskloss report`` renders from it)."""
TASK_NETWORK_DIR = "task_network"
"""``OUT/<name>/task_network/``: the segmentation network a study file's task term uses."""
SCORER_DIR = "segmentation"
"""``OUT/<name>/segmentation/``: the segmentation network that scores a study file's runs (Dice, SIS)."""
ZERO_FILLED_DIR = "zero_filled"
"""``OUT/<name>/zero_filled/``: the scores of the zero-filled inputs (``task: csmri``)."""
TASK_NETWORKS_DIR = "task_networks"
"""``OUT/mr2xray/task_networks/``: mr2xray's bone-segmentation runs."""
BONE_NETWORK = "bone"
"""The bone-segmentation run inside mr2xray's task loss (``task_networks/bone``)."""
BONE_SCORER = "bone_scorer"
"""The independent bone-segmentation run that scores mr2xray's task column (``task_networks/bone_scorer``)."""
CSMRI_TASK_NETWORK_RUN = "segmentation"
"""The csmri run of the segmentation network inside the task loss (``runs/segmentation``)."""
CSMRI_SCORER_RUN = "sis_segmentation"
"""The csmri run of the independent segmentation network that scores SIS (``runs/sis_segmentation``)."""
PER_IMAGE_CSV = "per_image.csv"
"""``results/per_image.csv``: every method's per-image values."""
REPORT_FILE = "report.md"
"""``OUT/report.md``: the report over every study found in ``OUT``."""
COMPARISONS_CSV = "comparisons.csv"
"""``results/comparisons.csv``: the report's comparisons, in the columns of ``taskloss compare``."""
COMPARISONS_MD = "comparisons.md"
"""``results/comparisons.md``: the same comparisons as the report's Markdown table."""
PLANS_FILE = "plans.json"
"""``results/plans.json``: the study's declared comparisons and method labels (the seed-level report reads it)."""
SEEDS_DIR = "seeds"
"""``OUT/<study>/seeds/<seed>/``: one replicate of the whole study per training seed (study files' ``seeds:``)."""
