"""Batched sparse coding (OMP) and dictionary learning (K-SVD) in torch, one dictionary per batch item.

Signals are rows: ``signals`` has shape (B, M, n) (M signals of length n per batch item), a
dictionary has shape (B, n, K) (K atoms of length n as columns, unit norm) and codes have shape
(B, M, K), so that ``codes @ dictionary.mT`` approximates ``signals``. The unbatched shapes (M, n),
(n, K) and (M, K) work too. (scikit-learn stores signals as columns: ``orthogonal_mp(D, Y.T).T``
equals ``omp(D, Y, ...)``.)

Both are written here rather than taken from scikit-learn because scikit-learn codes one signal at
a time in a Python loop, on one dictionary and on CPU only; DLMRI codes hundreds of thousands of
patches per image, every iteration, each image with its own dictionary. Here every signal of every
batch item advances one OMP step per vectorised tensor operation, on CPU or CUDA.
"""

import dataclasses
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from taskloss.errors import InputError
from taskloss.validation import check_finite

# Signals coded per vectorised pass (all batch items together). The OMP state of a signal is about
# (K + max_atoms) * (max_atoms + 4) values, so a pass stays within a few hundred MB in float32.
_SIGNALS_PER_PASS = 2**17


def omp(
    dictionary: torch.Tensor,
    signals: torch.Tensor,
    *,
    n_nonzero: int | None = None,
    tol: float | None = None,
) -> torch.Tensor:
    """Orthogonal matching pursuit of every signal on its batch item's dictionary.

    Each signal greedily gains the atom most correlated with its residual, then its coefficients
    become the least-squares fit on the chosen atoms (Pati et al. 1993). The fit uses the Cholesky
    factor of the Gram matrix of the chosen atoms, grown by one row per step as in Batch-OMP
    (Rubinstein, Zibulevsky and Elad 2008), but kept as its *inverse*: every triangular solve then
    becomes a matrix-vector product, which batches over all signals without a per-signal LAPACK call.

    A signal stops when it holds ``n_nonzero`` atoms, when its squared residual norm is at most
    ``tol``, or when no atom correlates with its residual any more (or the next atom is linearly
    dependent on the chosen ones). Given both limits, the first one reached stops it (DLMRI's
    error-constrained coding with an atom cap); scikit-learn's ``orthogonal_mp`` instead ignores
    ``n_nonzero_coefs`` when ``tol`` is given. A signal whose squared norm is already at most ``tol``
    gets no atom (scikit-learn always picks at least one).

    Args:
        dictionary: (B, n, K) or (n, K) real floating point; atoms are columns and should have unit
            norm (as for scikit-learn; longer atoms are favoured in the selection otherwise).
        signals: (B, M, n) or (M, n), same dtype and device, one signal per row.
        n_nonzero: the most atoms per signal, 1..K; default ``min(n, K)`` when ``tol`` is given.
        tol: the target squared residual norm ``||signal - codes @ dictionary.mT||^2``, >= 0
            (scikit-learn's ``tol``).

    Returns:
        Codes (B, M, K) or (M, K) with at most ``n_nonzero`` non-zero entries per row.

    Raises:
        InputError: for shapes that do not match, non-finite values, or missing or invalid limits.
    """
    dictionary, signals, unbatched = _check_coding_inputs(dictionary, signals)
    n, n_atoms = dictionary.shape[-2:]
    max_atoms = _max_atoms(n_nonzero, tol, n, n_atoms)
    gram = dictionary.mT @ dictionary
    codes = torch.zeros(*signals.shape[:2], n_atoms, dtype=signals.dtype, device=signals.device)
    per_pass = max(1, _SIGNALS_PER_PASS // signals.shape[0])
    for start in range(0, signals.shape[1], per_pass):
        chunk = signals[:, start:start + per_pass]
        codes[:, start:start + per_pass] = _omp_pass(
            gram, chunk @ dictionary, chunk.square().sum(-1), max_atoms, tol)
    return codes[0] if unbatched else codes


def _omp_pass(
    gram: torch.Tensor,
    correlations0: torch.Tensor,
    energy: torch.Tensor,
    max_atoms: int,
    tol: float | None,
) -> torch.Tensor:
    """OMP of one pass of signals given their correlations with the atoms.

    Signals that have stopped are dropped from the working set once it shrinks by a quarter (each
    batch item keeps the same number of rows, padded with stopped signals), and the per-atom buffers
    start small and double when full, so error-constrained coding, where most signals stop after a
    few atoms, does not pay for the slowest signal.

    Args:
        gram: ``D^T D`` (B, K, K).
        correlations0: ``signals @ D`` (B, M, K).
        energy: squared signal norms (B, M).
        max_atoms: the most atoms per signal.
        tol: target squared residual norm, or None.

    Returns:
        Codes (B, M, K).
    """
    result = torch.zeros_like(correlations0)
    state = _OmpState.start(correlations0, energy, min(max_atoms, 4), tol)
    eps = torch.finfo(gram.dtype).eps
    for step in range(max_atoms):
        widest = int(state.active.sum(-1).amax())
        if widest == 0:
            break
        if step == state.z.shape[-1]:
            state = state.grown(min(2 * step, max_atoms))
        if 4 * widest < 3 * state.active.shape[1]:
            state.save(result)
            state = state.take(state.active.logical_not().byte().argsort(dim=-1, stable=True)[
                :, :widest])
        state.add_atom(gram, step, eps)
        state.update_codes(gram, step)
        if tol is not None:
            state.active &= state.residual_sq > tol
    state.save(result)
    return result


@dataclass
class _OmpState:
    """Working state of batched OMP, one row per signal (B, M, ...).

    Attributes:
        position: each row's signal index in the pass (B, M).
        correlations0: correlations of the signals with the atoms (B, M, K).
        correlations: correlations of the residuals with the atoms (B, M, K).
        codes: the current coefficients (B, M, K).
        residual_sq: squared residual norms (B, M).
        energy: squared signal norms (B, M).
        active: whether each signal still gains atoms (B, M).
        free: 1 for the atoms a signal does not hold yet, 0 for those it holds (B, M, K).
        support: the chosen atoms in order (B, M, T), T the current capacity.
        inv_factor: inverse Cholesky factor ``L^-1`` of ``gram[support, support]`` (B, M, T, T).
        z: ``L^-1 correlations0[support]``, the signal's coordinates in the orthonormal basis of
            the chosen atoms' span (B, M, T).
        gamma: the coefficients of the chosen atoms, in support order (B, M, T).
    """

    position: torch.Tensor
    correlations0: torch.Tensor
    correlations: torch.Tensor
    codes: torch.Tensor
    residual_sq: torch.Tensor
    energy: torch.Tensor
    active: torch.Tensor
    free: torch.Tensor
    support: torch.Tensor
    inv_factor: torch.Tensor
    z: torch.Tensor
    gamma: torch.Tensor

    @classmethod
    def start(cls, correlations0: torch.Tensor, energy: torch.Tensor, capacity: int,
              tol: float | None) -> "_OmpState":
        """The state before the first atom, with room for ``capacity`` atoms per signal."""
        batch, count, _ = correlations0.shape
        device = correlations0.device
        return cls(
            position=torch.arange(count, device=device).expand(batch, -1),
            correlations0=correlations0,
            correlations=correlations0,
            codes=torch.zeros_like(correlations0),
            residual_sq=energy.clone(),
            energy=energy,
            active=energy > tol if tol is not None else torch.ones_like(energy, dtype=torch.bool),
            free=torch.ones_like(correlations0),
            support=torch.zeros(batch, count, capacity, dtype=torch.long, device=device),
            inv_factor=correlations0.new_zeros(batch, count, capacity, capacity),
            z=correlations0.new_zeros(batch, count, capacity),
            gamma=correlations0.new_zeros(batch, count, capacity),
        )

    def add_atom(self, gram: torch.Tensor, step: int, eps: float) -> None:
        """Choose each active signal's next atom and border the inverse Cholesky factor."""
        # Chosen atoms score 0 (a float product is several times faster than a boolean fill).
        scores = torch.abs(self.correlations).mul_(self.free)
        atom = scores.argmax(-1, keepdim=True)
        peak = scores.gather(-1, atom).squeeze(-1)
        # Stop when the residual is numerically orthogonal to every atom not yet chosen (relative
        # to the signal's norm); this also stops a signal whose best score is a chosen atom's 0.
        self.active &= peak.square() > (16 * eps) ** 2 * self.energy
        # w = L^-1 gram[support, atom]; lambda^2 = gram[atom, atom] - |w|^2 (the new atom's
        # squared distance from the span of the chosen ones). Products of these small per-signal
        # matrices are written as broadcast sums: batched matmul of tiny matrices is much slower.
        gram_row = _select_rows(gram, atom.squeeze(-1))  # gram[atom, :] (gram is symmetric)
        previous = self.inv_factor[..., :step, :step]
        overlap = gram_row.gather(-1, self.support[..., :step])
        w = (previous * overlap.unsqueeze(-2)).sum(-1)
        diagonal = gram_row.gather(-1, atom).squeeze(-1)
        lam_sq = diagonal - w.square().sum(-1)
        self.active &= lam_sq > eps * diagonal
        lam = torch.where(self.active, lam_sq, 1.0).sqrt()
        keep = self.active.unsqueeze(-1)
        new_row = -(w.unsqueeze(-1) * previous).sum(-2) / lam.unsqueeze(-1)
        # The new atom's residual correlation is lambda times its new orthonormal coordinate.
        z_step = self.correlations.gather(-1, atom).squeeze(-1) / lam
        self.inv_factor[..., step, :step] = torch.where(keep, new_row, 0.0)
        self.inv_factor[..., step, step] = torch.where(self.active, 1.0 / lam, 0.0)
        self.z[..., step] = torch.where(self.active, z_step, 0.0)
        self.support[..., step] = atom.squeeze(-1)
        self.free.scatter_(-1, atom, torch.where(keep, 0.0, 1.0).to(self.free.dtype))
        self.residual_sq = torch.where(self.active, self.residual_sq - z_step.square(),
                                       self.residual_sq)

    def update_codes(self, gram: torch.Tensor, step: int) -> None:
        """Coefficients ``gamma = L^-T z`` on the support, and the residual correlations they leave.

        ``gamma`` grows by ``z[step]`` times the new row of ``L^-1``; stopped signals keep their
        coefficients, as that row and ``z[step]`` are zero for them. (Their support entries past
        their last atom are meaningless and hold zero coefficients, which a scatter-add ignores.)
        """
        self.gamma[..., :step + 1] += self.z[..., step, None] * self.inv_factor[..., step, :step + 1]
        self.codes = torch.zeros_like(self.codes).scatter_add_(
            -1, self.support[..., :step + 1], self.gamma[..., :step + 1])
        self.correlations = torch.baddbmm(self.correlations0, self.codes, gram, alpha=-1)

    def save(self, result: torch.Tensor) -> None:
        """Write the current codes into ``result`` (B, M_pass, K) at the signals' positions."""
        result.flatten(0, 1)[_flat_rows(result, self.position)] = self.codes.flatten(0, 1)

    def grown(self, capacity: int) -> "_OmpState":
        """The same state with room for ``capacity`` atoms per signal (zero-padded)."""
        extra = capacity - self.z.shape[-1]
        return dataclasses.replace(
            self,
            support=F.pad(self.support, (0, extra)),
            inv_factor=F.pad(self.inv_factor, (0, extra, 0, extra)),
            z=F.pad(self.z, (0, extra)),
            gamma=F.pad(self.gamma, (0, extra)),
        )

    def take(self, rows: torch.Tensor) -> "_OmpState":
        """The state of the signals at ``rows`` (B, M') of each batch item."""
        return _OmpState(**{field.name: _select_rows(getattr(self, field.name), rows)
                            for field in fields(self)})


def ksvd(
    signals: torch.Tensor,
    dictionary: torch.Tensor,
    *,
    iterations: int,
    sparsity: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Learn one dictionary per batch item by K-SVD (Aharon, Elad and Bruckstein 2006).

    Each iteration codes every signal with ``sparsity`` atoms (:func:`omp`), then updates the atoms
    one after another: atom k and its non-zero coefficients become the best rank-1 approximation
    (top singular pair) of the residual of the signals that use atom k, with atom k's own
    contribution added back. The singular pair comes from the eigendecomposition of the small
    (n, n) matrix ``E^T E``, batched over the batch items. An atom that no signal uses is replaced by
    the (normalised) signal worst represented so far, as in Rubinstein's K-SVD code.

    Args:
        signals: training signals (B, N, n) or (N, n), one per row, real floating point.
        dictionary: initial dictionary (B, n, K) or (n, K) with unit-norm columns.
        iterations: number of K-SVD iterations, >= 1.
        sparsity: atoms per signal in the coding step, 1..K.

    Returns:
        ``(dictionary, codes)``: the learned dictionary (B, n, K) with unit-norm atoms and the codes
        (B, N, K) after the last atom update (unbatched inputs give unbatched outputs).
    """
    dictionary, signals, unbatched = _check_coding_inputs(dictionary, signals)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise InputError(f"iterations must be an integer >= 1, got {iterations!r}")
    n_atoms = dictionary.shape[-1]
    if isinstance(sparsity, bool) or not isinstance(sparsity, int) or not 1 <= sparsity <= n_atoms:
        raise InputError(f"sparsity must be an integer from 1 to the number of atoms ({n_atoms}), "
                         f"got {sparsity!r}")
    dictionary = dictionary.clone()
    for _ in range(iterations):
        codes = omp(dictionary, signals, n_nonzero=sparsity)
        _update_atoms(signals, dictionary, codes)
    return (dictionary[0], codes[0]) if unbatched else (dictionary, codes)


def _update_atoms(signals: torch.Tensor, dictionary: torch.Tensor, codes: torch.Tensor) -> None:
    """One K-SVD sweep over the atoms; updates ``dictionary`` (B, n, K) and ``codes`` (B, N, K).

    Each atom's update touches only the rows of the signals that use it (about N * sparsity / K),
    gathered into a (B, U, n) block; batch items with fewer users pad with masked-out rows.
    """
    residual = signals - codes @ dictionary.mT
    user_rows, user_counts = _user_rows(codes != 0)
    widths = user_counts.amax(0).clamp_min(1).tolist()  # one host sync per sweep, not per atom
    any_unused = (user_counts == 0).any(0).tolist()
    # Signals already used to replace an unused atom in this sweep are not used again.
    replaceable = torch.ones_like(residual[..., 0], dtype=torch.bool)
    for k, width in enumerate(widths):
        rows = user_rows[:, :width, k]
        valid = torch.arange(width, device=rows.device) < user_counts[:, k, None]
        old_atom = dictionary[..., k].clone()
        old_coefficients = codes[..., k].gather(1, rows) * valid
        # The users' residual with atom k's contribution added back, zero on padding rows. Products
        # over rows are elementwise, not matmuls: BLAS rounds matrix-vector products differently
        # for other numbers of rows, and each image of a batch must get its single-image result.
        with_atom = torch.addcmul(_select_rows(residual, rows), old_coefficients.unsqueeze(-1),
                                  old_atom.unsqueeze(-2)).mul_(valid.unsqueeze(-1))
        _, eigenvectors = torch.linalg.eigh(with_atom.mT @ with_atom)
        atom = eigenvectors[..., -1]
        coefficients = (with_atom * atom.unsqueeze(-2)).sum(-1)  # zero on padding rows
        if any_unused[k]:
            unused = user_counts[:, k, None] == 0
            atom = torch.where(unused, _replacement_atom(signals, residual, replaceable, unused),
                               atom)
        dictionary[..., k] = atom
        # Padding rows repeat real rows; their changes are zero, so the additions are order-free.
        codes[..., k].scatter_add_(1, rows, coefficients - old_coefficients)
        change = torch.addcmul(old_coefficients.unsqueeze(-1) * old_atom.unsqueeze(-2),
                               coefficients.unsqueeze(-1), atom.unsqueeze(-2), value=-1)
        _add_to_rows(residual, rows, change)


def _user_rows(users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of the signals using each atom.

    Args:
        users: whether signal i uses atom k (B, N, K).

    Returns:
        ``(rows, counts)``: ``rows[b, j, k]`` is the j-th signal using atom k, for j below
        ``counts[b, k]`` (B, K), and 0 past it; ``rows`` has shape (B, max count, K).
    """
    counts = users.sum(1)
    rank = users.cumsum(1) - 1
    width = max(1, int(counts.max()))
    # Non-users go to a discarded extra row.
    slot = torch.where(users, rank, width)
    signal = torch.arange(users.shape[1], device=users.device)[None, :, None].expand_as(slot)
    rows = slot.new_zeros(users.shape[0], width + 1, users.shape[2]).scatter_(1, slot, signal)
    return rows[:, :width], counts


def _replacement_atom(
    signals: torch.Tensor, residual: torch.Tensor, replaceable: torch.Tensor, unused: torch.Tensor
) -> torch.Tensor:
    """The normalised worst-represented signal of each batch item (B, n).

    Args:
        signals: the training signals (B, N, n).
        residual: their current residuals (B, N, n).
        replaceable: signals not yet turned into an atom in this sweep (B, N); the chosen signal
            is marked as taken in the batch items where ``unused`` (B, 1) is true.
        unused: whether each batch item's atom is unused and will be replaced.
    """
    error = residual.square().sum(-1).masked_fill(~replaceable, -1.0)
    worst = error.argmax(-1, keepdim=True)
    replaceable.scatter_(-1, worst, replaceable.gather(-1, worst) & ~unused)
    signal = signals.gather(1, worst.unsqueeze(-1).expand(-1, -1, signals.shape[-1])).squeeze(1)
    norm = signal.norm(dim=-1, keepdim=True)
    # A zero signal (every signal represented exactly) cannot become an atom: keep a unit vector.
    fallback = torch.zeros_like(signal)
    fallback[..., 0] = 1.0
    return torch.where(norm > 0, signal / norm.clamp_min(torch.finfo(signal.dtype).tiny), fallback)


def _select_rows(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of each batch item: ``tensor[b, rows[b]]`` for (B, M, ...) and (B, M') -> (B, M', ...).

    Written as one ``index_select`` on the flattened batch: it copies whole rows, several times
    faster on CPU than ``gather`` with an expanded index, which reads every element's index.
    """
    return tensor.flatten(0, 1).index_select(0, _flat_rows(tensor, rows)).unflatten(0, rows.shape)


def _add_to_rows(tensor: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``tensor[b, rows[b]] += values[b]`` in place, repeated rows accumulating; (B, M, ...)."""
    tensor.view(-1, *tensor.shape[2:]).index_add_(0, _flat_rows(tensor, rows), values.flatten(0, 1))


def _flat_rows(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(rows.shape[0], device=rows.device).unsqueeze(-1) * tensor.shape[1]
    return (rows + offsets).flatten()


def _check_coding_inputs(
    dictionary: object, signals: object
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Check and batch a dictionary/signals pair; returns (dictionary, signals, was_unbatched)."""
    for name, value in (("dictionary", dictionary), ("signals", signals)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise InputError(f"{name} must be a real floating-point torch.Tensor, got {kind}; "
                             "convert with torch.as_tensor(..., dtype=torch.float32)")
    assert isinstance(dictionary, torch.Tensor) and isinstance(signals, torch.Tensor)
    if dictionary.ndim not in (2, 3) or signals.ndim != dictionary.ndim:
        raise InputError(f"dictionary has shape {tuple(dictionary.shape)} and signals "
                         f"{tuple(signals.shape)}; expected (n, K) with (M, n), or (B, n, K) with "
                         "(B, M, n)")
    unbatched = dictionary.ndim == 2
    if unbatched:
        dictionary, signals = dictionary[None], signals[None]
    if signals.shape[0] != dictionary.shape[0] or signals.shape[-1] != dictionary.shape[-2]:
        raise InputError(f"signals of shape {tuple(signals.shape)} do not fit a dictionary of shape "
                         f"{tuple(dictionary.shape)}: the batch sizes and the signal length n "
                         "(signals' last axis, the dictionary's rows) must agree")
    if min(dictionary.shape) == 0 or signals.shape[1] == 0:
        raise InputError(f"dictionary {tuple(dictionary.shape)} or signals {tuple(signals.shape)} "
                         "is empty; pass at least one atom and one signal")
    if dictionary.dtype != signals.dtype or dictionary.device != signals.device:
        raise InputError(f"dictionary is {dictionary.dtype} on {dictionary.device} but signals are "
                         f"{signals.dtype} on {signals.device}; use one dtype and device")
    check_finite(dictionary, "dictionary")
    check_finite(signals, "signals")
    return dictionary, signals, unbatched


def _max_atoms(n_nonzero: int | None, tol: float | None, length: int, n_atoms: int) -> int:
    """Validate the stopping rule and return the atom cap."""
    if n_nonzero is None and tol is None:
        raise InputError("omp needs a stopping rule: pass n_nonzero (atoms per signal), tol "
                         "(target squared residual norm), or both")
    if tol is not None and not tol >= 0:
        raise InputError(f"tol is the target squared residual norm and must be >= 0, got {tol}")
    if n_nonzero is None:
        return min(length, n_atoms)
    if isinstance(n_nonzero, bool) or not isinstance(n_nonzero, int) or not 1 <= n_nonzero <= n_atoms:
        raise InputError(f"n_nonzero must be an integer from 1 to the number of atoms ({n_atoms}), "
                         f"got {n_nonzero!r}")
    return n_nonzero
