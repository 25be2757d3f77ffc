"""MOS, agreement and paired tests of a rated study, against numpy/scipy computed independently."""

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from taskloss.readers import CreatedStudy, Store, icc, score_study, write_details, write_mos_csv

# Score of (reader, method) before a per-case wobble: the ground truth best, zero-filling worst.
BASE_SCORE = {"zero_filled": 1, "recnet": 3, "refined": 4, "ground_truth": 5}


def planned_score(reader_id: int, case_index: int, method: str) -> int:
    wobble = (reader_id + case_index) % 2  # readers disagree a little, differently per case
    return int(np.clip(BASE_SCORE[method] - wobble, 1, 5))


def rate_all(study: CreatedStudy, skip: set[tuple[int, str]] = frozenset()) -> dict[tuple[int, str], int]:
    """Rate every image of ``study`` by :func:`planned_score`; returns (reader_id, image_id) -> score."""
    given = {}
    with Store.open(study.study_dir) as store:
        images = store.images()
        for reader_id in (1, 2):
            for image in images:
                if (reader_id, image.image_id) in skip:
                    continue
                score = planned_score(reader_id, study.case_ids.index(image.case_id), image.method)
                assert store.rate(reader_id, image.image_id, score)
                given[reader_id, image.image_id] = score
    return given


def test_mos_per_method_matches_the_ratings(study: CreatedStudy) -> None:
    rate_all(study)
    with Store.open(study.study_dir) as store:
        report = score_study(store)
    assert [row.method for row in report.methods] == ["zero_filled", "recnet", "refined", "ground_truth"]
    for row in report.methods:
        scores = [planned_score(r, c, row.method) for r in (1, 2) for c in range(3)]
        assert row.mos == pytest.approx(np.mean(scores))
        assert row.sd == pytest.approx(np.std(scores, ddof=1))
        assert (row.n_ratings, row.n_readers) == (6, 2)
    assert (report.n_ratings, report.n_expected) == (24, 24)


def test_agreement_is_computed_on_the_items_x_readers_table(study: CreatedStudy) -> None:
    rate_all(study)
    with Store.open(study.study_dir) as store:
        report = score_study(store)
        images = store.images()
    table = np.array([[planned_score(r, study.case_ids.index(i.case_id), i.method) for r in (1, 2)]
                      for i in images])
    assert report.agreement is not None
    expected = icc(table)
    assert report.agreement.icc.single == pytest.approx(expected.single)
    assert report.agreement.icc.average == pytest.approx(expected.average)
    assert (report.agreement.icc.n_items, report.agreement.icc.n_readers) == (12, 2)
    # Fleiss' kappa, computed here straight from its definition for 2 raters: observed agreement is
    # the share of items where both readers agree; chance agreement from the pooled category shares.
    observed = np.mean(table[:, 0] == table[:, 1])
    shares = np.array([np.mean(table == category) for category in range(1, 6)])
    chance = np.sum(shares**2)
    assert report.agreement.fleiss_kappa == pytest.approx((observed - chance) / (1 - chance))


def test_paired_tests_use_per_case_mos_and_holm(study: CreatedStudy) -> None:
    rate_all(study)
    with Store.open(study.study_dir) as store:
        report = score_study(store)
    pairs = [(c.method_a, c.method_b) for c in report.comparisons]
    assert len(pairs) == 6 and pairs[0] == ("zero_filled", "recnet")
    for comparison in report.comparisons:
        a = [np.mean([planned_score(r, c, comparison.method_a) for r in (1, 2)]) for c in range(3)]
        b = [np.mean([planned_score(r, c, comparison.method_b) for r in (1, 2)]) for c in range(3)]
        assert comparison.test.n == 3
        assert comparison.test.median_difference == pytest.approx(np.median(np.subtract(a, b)))
        assert comparison.test.p_value == pytest.approx(stats.wilcoxon(a, b).pvalue)
    raw = sorted(c.test.p_value for c in report.comparisons)
    assert min(c.p_holm for c in report.comparisons) == pytest.approx(min(1.0, 6 * raw[0]))


def test_partial_study_scores_what_it_has(study: CreatedStudy) -> None:
    with Store.open(study.study_dir) as store:
        missing = store.images()[0]
    given = rate_all(study, skip={(2, missing.image_id)})
    with Store.open(study.study_dir) as store:
        report = score_study(store)
    assert (report.n_ratings, report.n_expected) == (23, 24)
    assert report.agreement is not None and report.agreement.icc.n_items == 11
    row = next(r for r in report.methods if r.method == missing.method)
    assert row.n_ratings == 5
    assert row.mos == pytest.approx(np.mean([s for (_, i), s in given.items()
                                             if i in _image_ids_of(study, missing.method)]))


def _image_ids_of(study: CreatedStudy, method: str) -> set[str]:
    with Store.open(study.study_dir) as store:
        return {i.image_id for i in store.images() if i.method == method}


def test_unrated_study_has_empty_scores(study: CreatedStudy, tmp_path: Path) -> None:
    with Store.open(study.study_dir) as store:
        report = score_study(store)
    assert all(np.isnan(row.mos) and row.n_ratings == 0 for row in report.methods)
    assert report.agreement is None and report.comparisons == []
    write_mos_csv(report, tmp_path / "mos.csv")
    lines = (tmp_path / "mos.csv").read_text().splitlines()
    assert lines == ["method,mos,sd,n_ratings,n_readers", "zero_filled,,,0,0", "recnet,,,0,0",
                     "refined,,,0,0", "ground_truth,,,0,0"]


def test_single_reader_study_has_no_agreement(make_study: Callable[..., CreatedStudy]) -> None:
    single = make_study(reader_names=["solo"])
    with Store.open(single.study_dir) as store:
        for image in store.images():
            store.rate(1, image.image_id, 3)
        report = score_study(store)
    assert report.agreement is None
    assert all(row.mos == 3 and row.sd == 0 and row.n_readers == 1 for row in report.methods)


def test_written_files_hold_the_report(study: CreatedStudy, tmp_path: Path) -> None:
    rate_all(study)
    with Store.open(study.study_dir) as store:
        report = score_study(store)
    write_mos_csv(report, tmp_path / "mos.csv")
    with (tmp_path / "mos.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["method", "mos", "sd", "n_ratings", "n_readers"]
    assert [(r["method"], float(r["mos"]), int(r["n_ratings"])) for r in rows] == [
        (m.method, m.mos, m.n_ratings) for m in report.methods]
    pairs_path, agreement_path = write_details(report, tmp_path)
    with agreement_path.open() as file:
        agreement = {r["statistic"]: float(r["value"]) for r in csv.DictReader(file)}
    assert agreement["icc_2_1"] == pytest.approx(report.agreement.icc.single)
    assert agreement["fleiss_kappa"] == pytest.approx(report.agreement.fleiss_kappa)
    with pairs_path.open() as file:
        assert len(list(csv.DictReader(file))) == 6
