"""Batched OMP against scikit-learn's orthogonal_mp, and K-SVD's dictionary learning."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import orthogonal_mp

from taskloss.baselines import ksvd, omp, sparse_coding
from taskloss.errors import InputError


def _unit_columns(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, cols))
    return matrix / np.linalg.norm(matrix, axis=0)


def _sklearn_omp(dictionary: np.ndarray, signals: np.ndarray, **limits: float | None) -> np.ndarray:
    """scikit-learn's OMP with signals as rows, (M, K)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a premature stop would make the comparison meaningless
        return orthogonal_mp(dictionary, signals.T, **limits).T


@pytest.mark.parametrize(("n", "n_atoms", "n_nonzero"), [(13, 29, 1), (13, 29, 6), (20, 20, 11)])
def test_omp_equals_sklearn_with_an_atom_count(n: int, n_atoms: int, n_nonzero: int) -> None:
    rng = np.random.default_rng(n_nonzero)
    dictionaries = np.stack([_unit_columns(rng, n, n_atoms) for _ in range(3)])
    signals = rng.standard_normal((3, 41, n))
    codes = omp(torch.from_numpy(dictionaries), torch.from_numpy(signals), n_nonzero=n_nonzero)
    assert codes.shape == (3, 41, n_atoms)
    for item in range(3):
        expected = _sklearn_omp(dictionaries[item], signals[item], n_nonzero_coefs=n_nonzero)
        np.testing.assert_allclose(codes[item].numpy(), expected, atol=1e-12)
        assert ((codes[item] != 0).sum(-1) == n_nonzero).all()


def test_omp_equals_sklearn_with_an_error_target() -> None:
    rng = np.random.default_rng(1)
    dictionary = _unit_columns(rng, 16, 40)
    signals = rng.standard_normal((60, 16))
    tol = 0.2 * float(np.median((signals ** 2).sum(1)))  # every signal starts above it
    codes = omp(torch.from_numpy(dictionary), torch.from_numpy(signals), tol=tol)
    np.testing.assert_allclose(codes.numpy(), _sklearn_omp(dictionary, signals, tol=tol), atol=1e-12)
    residual = signals - codes.numpy() @ dictionary.T
    assert ((residual ** 2).sum(1) <= tol * (1 + 1e-12)).all()


def test_omp_with_both_limits_stops_at_the_first_one_reached() -> None:
    rng = np.random.default_rng(2)
    dictionary = _unit_columns(rng, 16, 40)
    signals = rng.standard_normal((80, 16))
    tol, cap = 2.0, 5
    codes = omp(torch.from_numpy(dictionary), torch.from_numpy(signals), n_nonzero=cap, tol=tol)
    by_error = _sklearn_omp(dictionary, signals, tol=tol)
    by_count = _sklearn_omp(dictionary, signals, n_nonzero_coefs=cap)
    # OMP is greedy: stopping at the cap gives the cap-limited solution.
    over_cap = (by_error != 0).sum(1) > cap
    assert 0 < over_cap.sum() < len(signals)  # both limits are exercised
    expected = np.where(over_cap[:, None], by_count, by_error)
    np.testing.assert_allclose(codes.numpy(), expected, atol=1e-12)


def test_omp_gives_no_atom_to_signals_already_within_the_target() -> None:
    rng = np.random.default_rng(3)
    dictionary = torch.from_numpy(_unit_columns(rng, 8, 12))
    signals = torch.from_numpy(rng.standard_normal((4, 8)))
    signals[1] = 0.0
    signals[2] *= 1e-3
    codes = omp(dictionary, signals, n_nonzero=3, tol=1e-4)
    assert (codes[1:3] == 0).all()
    assert ((codes[[0, 3]] != 0).sum(-1) >= 1).all()
    # Without an error target a zero signal still gets zero coefficients.
    assert (omp(dictionary, torch.zeros(2, 8, dtype=torch.float64), n_nonzero=3) == 0).all()


def test_omp_recovers_exactly_sparse_signals_in_float32() -> None:
    rng = np.random.default_rng(4)
    dictionary = _unit_columns(rng, 36, 36)
    truth = np.zeros((200, 36))
    for row in truth:
        row[rng.choice(36, 3, replace=False)] = rng.uniform(0.5, 2.0, 3) * rng.choice([-1, 1], 3)
    signals = truth @ dictionary.T
    codes = omp(torch.from_numpy(dictionary).float(), torch.from_numpy(signals).float(), n_nonzero=8,
                tol=1e-8)
    np.testing.assert_allclose(codes.numpy(), truth, atol=1e-4)


def test_omp_in_several_passes_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    dictionary = torch.from_numpy(np.stack([_unit_columns(rng, 9, 15) for _ in range(2)]))
    signals = torch.from_numpy(rng.standard_normal((2, 23, 9)))
    whole = omp(dictionary, signals, n_nonzero=4, tol=2.0)
    monkeypatch.setattr(sparse_coding, "_SIGNALS_PER_PASS", 10)  # passes of 5 signals per item
    torch.testing.assert_close(omp(dictionary, signals, n_nonzero=4, tol=2.0), whole)


def _sparse_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Signals made of 3 atoms of a random (16, 32) dictionary each, plus a little noise."""
    rng = np.random.default_rng(seed)
    truth = _unit_columns(rng, 16, 32)
    codes = np.zeros((1500, 32))
    for row in codes:
        row[rng.choice(32, 3, replace=False)] = rng.standard_normal(3)
    signals = codes @ truth.T + 0.01 * rng.standard_normal((1500, 16))
    return torch.from_numpy(truth), torch.from_numpy(signals)


def _error(signals: torch.Tensor, dictionary: torch.Tensor, codes: torch.Tensor) -> float:
    return float((signals - codes @ dictionary.mT).square().sum())


def _numpy_ksvd(signals: np.ndarray, dictionary: np.ndarray, iterations: int, sparsity: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Textbook K-SVD with signals as columns: scikit-learn OMP, then one SVD per atom."""
    dictionary = dictionary.copy()
    for _ in range(iterations):
        codes = orthogonal_mp(dictionary, signals, n_nonzero_coefs=sparsity)
        for k in range(dictionary.shape[1]):
            users = np.flatnonzero(codes[k])
            error = (signals[:, users] - dictionary @ codes[:, users]
                     + np.outer(dictionary[:, k], codes[k, users]))
            u, s, vt = np.linalg.svd(error, full_matrices=False)
            dictionary[:, k], codes[k, users] = u[:, 0], s[0] * vt[0]
    return dictionary, codes


def test_ksvd_equals_a_textbook_numpy_ksvd() -> None:
    _, signals = _sparse_data(seed=0)
    # Initial atoms from signals outside the training set: a training signal equal to an atom would
    # have a zero residual, where scikit-learn's OMP goes on adding atoms with zero coefficients.
    initial, signals = signals[:32].mT / signals[:32].norm(dim=1), signals[32:]
    learned, codes = ksvd(signals, initial, iterations=6, sparsity=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no premature OMP stop in the reference
        expected_dictionary, expected_codes = _numpy_ksvd(signals.numpy().T, initial.numpy(), 6, 3)
    signs = np.sign((learned.numpy() * expected_dictionary).sum(0))  # singular vectors: +-
    np.testing.assert_allclose(learned.numpy(), expected_dictionary * signs, atol=1e-9)
    np.testing.assert_allclose(codes.numpy(), (expected_codes * signs[:, None]).T, atol=1e-9)


def test_ksvd_lowers_the_representation_error_and_finds_the_generating_atoms() -> None:
    truth, signals = _sparse_data(seed=0)
    initial = signals[:32].mT / signals[:32].norm(dim=1)
    before = _error(signals, initial, omp(initial, signals, n_nonzero=3))
    learned, codes = ksvd(signals, initial, iterations=30, sparsity=3)
    assert _error(signals, learned, codes) < 0.1 * before
    torch.testing.assert_close(learned.norm(dim=0), torch.ones(32, dtype=torch.float64))
    assert ((codes != 0).sum(-1) <= 3).all()
    # Aharon et al.'s criterion: a generating atom is found when a learned atom has |cos| > 0.99.
    found = (truth.mT @ learned).abs().amax(dim=1) > 0.99
    assert found.float().mean() >= 0.85


def test_ksvd_error_decreases_with_iterations() -> None:
    _, signals = _sparse_data(seed=1)
    initial = signals[:32].mT / signals[:32].norm(dim=1)
    errors = [_error(signals, *ksvd(signals, initial, iterations=i, sparsity=3)) for i in (1, 3, 9)]
    assert errors[0] > errors[1] > errors[2]


def test_ksvd_batch_items_are_independent() -> None:
    pairs = [_sparse_data(seed) for seed in (2, 3)]
    signals = torch.stack([signals for _, signals in pairs])
    initial = torch.stack([s[:32].mT / s[:32].norm(dim=1) for s in signals])
    dictionaries, codes = ksvd(signals, initial, iterations=4, sparsity=3)
    for item in range(2):
        single_dictionary, single_codes = ksvd(signals[item], initial[item], iterations=4, sparsity=3)
        torch.testing.assert_close(dictionaries[item], single_dictionary)
        torch.testing.assert_close(codes[item], single_codes)


def test_ksvd_replaces_atoms_that_no_signal_uses() -> None:
    rng = np.random.default_rng(6)
    # Signals in the span of the first 3 coordinates; atoms 3 and 4 are orthogonal to all of them.
    signals = torch.from_numpy(np.pad(rng.standard_normal((50, 3)), ((0, 0), (0, 2))))
    dictionary, _ = ksvd(signals, torch.eye(5, dtype=torch.float64), iterations=1, sparsity=1)
    assert dictionary[3:, 3:].abs().max() < 1e-12  # the unused atoms now lie in the signals' span
    torch.testing.assert_close(dictionary.norm(dim=0), torch.ones(5, dtype=torch.float64))
    # Each replacement is a (normalised) training signal, and not the same one twice.
    cosines = (signals @ dictionary[:, 3:]).abs() / signals.norm(dim=1, keepdim=True)
    assert (cosines.amax(dim=0) > 1 - 1e-12).all()
    assert cosines.argmax(dim=0)[0] != cosines.argmax(dim=0)[1]


@pytest.mark.parametrize(
    ("dictionary", "signals", "limits", "message"),
    [
        (torch.eye(4), torch.ones(3, 4), {}, "omp needs a stopping rule"),
        (torch.eye(4), torch.ones(3, 4), {"n_nonzero": 5}, "n_nonzero must be an integer from 1"),
        (torch.eye(4), torch.ones(3, 4), {"n_nonzero": 0}, "n_nonzero must be an integer from 1"),
        (torch.eye(4), torch.ones(3, 4), {"tol": -1.0}, "tol is the target squared residual"),
        (torch.eye(4), torch.ones(3, 5), {"tol": 1.0}, "the signal length n"),
        (torch.eye(4), torch.ones(2, 3, 4), {"tol": 1.0}, "expected (n, K) with (M, n)"),
        (torch.eye(4), torch.ones(3, 4, dtype=torch.float64), {"tol": 1.0}, "use one dtype"),
        (torch.eye(4), torch.full((3, 4), float("nan")), {"tol": 1.0}, "signals holds 12 NaN"),
        (torch.eye(4).int(), torch.ones(3, 4), {"tol": 1.0}, "dictionary must be a real floating"),
        (torch.eye(4), torch.ones(0, 4), {"tol": 1.0}, "is empty"),
    ],
)
def test_omp_rejects_bad_input(dictionary: torch.Tensor, signals: torch.Tensor,
                               limits: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        omp(dictionary, signals, **limits)


def test_ksvd_rejects_bad_iterations_and_sparsity() -> None:
    with pytest.raises(InputError, match="iterations must be an integer >= 1, got 0"):
        ksvd(torch.ones(3, 4), torch.eye(4), iterations=0, sparsity=1)
    with pytest.raises(InputError, match=r"sparsity must be an integer from 1 to .* \(4\), got 5"):
        ksvd(torch.ones(3, 4), torch.eye(4), iterations=1, sparsity=5)
