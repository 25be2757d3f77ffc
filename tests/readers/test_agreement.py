"""ICC, Fleiss' kappa and Holm's adjustment against published examples and hand-worked values."""

from collections.abc import Callable

import numpy as np
import pytest

from taskloss.errors import InputError
from taskloss.readers import category_counts, fleiss_kappa, holm, icc

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges. Their Table 4 gives
# ICC(2,1) = .29 and ICC(2,4) = .62 (two decimals).
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]

# Fleiss (1971) example as reproduced on Wikipedia ("Fleiss' kappa", worked example): 10 subjects,
# 14 raters each, 5 categories; P-bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_icc_matches_shrout_fleiss_published_values() -> None:
    result = icc(SHROUT_FLEISS)
    assert round(result.single, 2) == 0.29
    assert round(result.average, 2) == 0.62
    assert (result.n_items, result.n_readers) == (6, 4)


def test_icc_by_hand_on_a_small_table() -> None:
    # Items x readers [[1, 2], [3, 5], [5, 5]]: grand mean 3.5; item means 1.5, 4, 5; reader means
    # 3, 4. SS_items = 2 * (4 + 0.25 + 2.25) = 13, SS_readers = 3 * (0.25 + 0.25) = 1.5,
    # SS_total = 6.25 + 2.25 + 0.25 + 2.25 + 2.25 + 2.25 = 15.5, SS_error = 1.
    # MS_items = 6.5, MS_readers = 1.5, MS_error = 0.5.
    # ICC(2,1) = (6.5 - 0.5) / (6.5 + 0.5 + 2 * 1 / 3) = 6 / (23 / 3) = 18 / 23.
    # ICC(2,k) = (6.5 - 0.5) / (6.5 + 1 / 3) = 18 / 20.5.
    result = icc([[1, 2], [3, 5], [5, 5]])
    assert result.single == pytest.approx(18 / 23, abs=1e-12)
    assert result.average == pytest.approx(18 / 20.5, abs=1e-12)


def test_icc_is_one_for_identical_readers_and_lowered_by_a_reader_offset() -> None:
    scores = np.array([[1, 1, 1], [3, 3, 3], [4, 4, 4], [5, 5, 5]])
    assert icc(scores).single == pytest.approx(1.0)
    shifted = scores + np.array([0, 0, 1])  # a stricter/milder reader: absolute agreement drops
    assert icc(shifted).single < 1.0


def test_icc_is_nan_when_every_score_is_equal() -> None:
    assert np.isnan(icc(np.full((3, 2), 4)).single)


def test_fleiss_kappa_matches_the_published_example() -> None:
    assert fleiss_kappa(FLEISS_COUNTS) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_by_hand_and_at_perfect_agreement() -> None:
    # Two items, two raters, two categories: item 1 both in A, item 2 split.
    # P_1 = (4 - 2) / 2 = 1, P_2 = (1 + 1 - 2) / 2 = 0, P-bar = 0.5; p_A = 3/4, p_B = 1/4,
    # P_e = 10/16; kappa = (0.5 - 0.625) / 0.375 = -1/3.
    assert fleiss_kappa([[2, 0], [1, 1]]) == pytest.approx(-1 / 3)
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]]) == pytest.approx(1.0)


def test_category_counts_counts_each_score() -> None:
    counts = category_counts([[1, 1, 5], [2, 3, 2]], (1, 2, 3, 4, 5))
    np.testing.assert_array_equal(counts, [[2, 0, 0, 0, 1], [0, 2, 1, 0, 0]])


def test_holm_by_hand() -> None:
    # Sorted p: 0.01, 0.02, 0.04 (m = 3) -> 0.03, 0.04, max(0.04, 0.04) = 0.04; back in input order.
    np.testing.assert_allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: icc([[1, 2, 3]]), "at least 2 rows and 2 columns"),
        (lambda: icc([[1, np.nan], [2, 3]]), "complete table"),
        (lambda: fleiss_kappa([[2, 0], [1, 0]]), "same number of ratings"),
        (lambda: fleiss_kappa([[-1, 3]]), "non-negative"),
        (lambda: category_counts([[1, 6], [2, 2]], (1, 2, 3, 4, 5)), "must all lie in"),
    ],
)
def test_bad_tables_are_refused_with_a_clear_message(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()
