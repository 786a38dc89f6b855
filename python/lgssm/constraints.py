"""Element-wise constraints on parameter matrices, in MARSS's form.

A constraint says which entries of a parameter M a fit may change, as

    vec(M) = fixed + design @ beta,

with vec stacking the columns (Holmes 2012, "Derivation of an EM algorithm for
constrained and unconstrained multivariate autoregressive state-space (MARSS)
models", Sec. 2). beta holds the free values: an entry whose row of ``design``
is zero is fixed, and entries that share a column share one value. Attach one
to a parameter's properties::

    props.emissions.weights.constraint = lgssm.constraints.pattern([["a", 0], ["b", "a"]])

`pattern` writes it as MARSS's mixed matrices do (numbers fixed, names free,
equal names tied); `linear` takes ``fixed`` and ``design`` as they are. EM
honours a constraint in closed form (the constrained M-step of
``src/unchecked.hpp``), and the gradient fits (``fit_lbfgs``, ``fit_sgd``) and
``log_prob_gradient`` work over beta.

Every parameter can be constrained. A covariance's constraint (it replaces the
``structure``) must be symmetric and block diagonal between the components with a
free value and the others (zero rows for states without noise, exactly observed
emissions, or a known fixed block), with free values whose span is closed under
X Y + Y X: diagonal variances, free or shared, block-diagonal combinations of full,
diagonal and equal-variance-and-covariance blocks. For those the M-step is the
projection of the expected scatter onto the constraint, the exact maximizer
(``props.hpp``). `diagonal`, `equalvarcov`, `unconstrained` and `block_diagonal`
build them; `pattern` writes any other, e.g. ``pattern([["v", 0], [0, 0]])`` for a
variance and a deterministic second state. The gradient fits map free variances
(free values on the diagonal only) through log standard deviations and others
linearly; L-BFGS ends over the free variances' standard deviations (docs/guide.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._checks import real_array

__all__ = ["Constraint", "block_diagonal", "diagonal", "equalvarcov", "linear", "pattern", "unconstrained"]


@dataclass(frozen=True, eq=False)
class Constraint:
    """The affine constraint vec(M) = fixed + design @ beta on a parameter M.

    Make one with `pattern` or `linear`.

    Parameters
    ----------
    shape : tuple of int
        The shape of M, ``(rows, cols)`` or ``(size,)`` for a vector.
    fixed : ndarray, shape (rows * cols,)
        vec(M) at beta = 0.
    design : ndarray, shape (rows * cols, k)
        How the k free values enter vec(M) (full column rank).
    names : tuple of str
        A name for each free value (column of ``design``).
    """

    shape: tuple
    fixed: np.ndarray
    design: np.ndarray
    names: tuple

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Constraint)
            and self.shape == other.shape
            and self.names == other.names
            and np.array_equal(self.fixed, other.fixed)
            and np.array_equal(self.design, other.design)
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.names, self.fixed.tobytes(), self.design.tobytes()))

    @property
    def num_free(self) -> int:
        """The number of free values k."""
        return self.design.shape[1]

    def matrix(self, beta) -> np.ndarray:
        """M for the free values ``beta``.

        Parameters
        ----------
        beta : array_like, shape (k,)
            The free values, in the order of `names`.

        Returns
        -------
        ndarray
            M, of shape `shape`.

        Raises
        ------
        ValueError
            If ``beta`` does not have k finite entries.
        """
        b = _finite("beta", beta)
        if b.shape != (self.num_free,):
            raise ValueError(f"beta: expected shape ({self.num_free},), got {b.shape}")
        return (self.fixed + self.design @ b).reshape(self.shape, order="F")

    def free_values(self, matrix) -> np.ndarray:
        """The free values beta of the matrix nearest ``matrix`` that satisfies the constraint.

        Least squares in vec(M) (``lgssm::free_values`` of the C++ core); for a matrix
        that satisfies the constraint, its own free values.

        Parameters
        ----------
        matrix : array_like
            M, of shape `shape`.

        Returns
        -------
        ndarray, shape (k,)
            beta, in the order of `names`.

        Raises
        ------
        ValueError
            If ``matrix`` is not finite or not of shape `shape`.
        """
        m = _finite("matrix", matrix)
        if m.shape != self.shape:
            raise ValueError(f"matrix: expected shape {self.shape}, got {m.shape}")
        return np.array(_core.free_values(self.to_core(), m.reshape(self.shape[0], -1)), dtype=np.float64).reshape(-1)

    def to_core(self) -> _core.Affine:
        """The core's form of the constraint.

        Returns
        -------
        lgssm._core.Affine
            ``fixed`` and ``design``.
        """
        return _core.Affine(self.fixed, self.design)


def _finite(name: str, value) -> np.ndarray:
    a = real_array(name, value)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected finite values, got a NaN or an infinity")
    return a


def _shape(name: str, a: np.ndarray) -> tuple:
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty vector or matrix, got shape {a.shape}")
    return a.shape


def pattern(entries) -> Constraint:
    """A constraint written entry by entry: numbers are fixed, names are free.

    Entries with the same name share one free value (MARSS's character
    matrices). The free values are ordered by first appearance, column by column.

    Parameters
    ----------
    entries : nested sequence of float or str
        A vector or a matrix shaped like the parameter, for example
        ``[["a", 0], ["b", "a"]]`` for a 2 x 2 matrix with a fixed zero and a
        tied diagonal.

    Returns
    -------
    Constraint
        The constraint, with ``names`` the distinct names.

    Raises
    ------
    ValueError
        If an entry is neither a finite number nor a non-empty string, or the
        entries do not form a vector or matrix.

    Examples
    --------
    >>> c = pattern([["a", 0.0], ["b", "a"]])
    >>> c.names
    ('a', 'b')
    >>> c.matrix([2.0, 3.0])
    array([[2., 0.],
           [3., 2.]])
    """
    grid = np.array(entries, dtype=object)
    shape = _shape("entries", grid)
    flat = grid.reshape(-1, order="F")
    names: list[str] = []
    fixed = np.zeros(flat.size)
    columns: list[int] = []
    for i, e in enumerate(flat):
        if isinstance(e, str):
            if not e:
                raise ValueError(f"entries: expected a number or a non-empty name, got an empty string at {i}")
            if e not in names:
                names.append(e)
            columns.append(names.index(e))
        elif isinstance(e, (int, float, np.integer, np.floating)) and not isinstance(e, bool) and np.isfinite(e):
            fixed[i] = float(e)
            columns.append(-1)
        else:
            raise ValueError(f"entries: expected a finite number or a name, got {e!r}")
    design = np.zeros((flat.size, len(names)))
    for i, j in enumerate(columns):
        if j >= 0:
            design[i, j] = 1.0
    return Constraint(shape, fixed, design, tuple(names))


def linear(fixed, design, names=None) -> Constraint:
    """The constraint vec(M) = vec(fixed) + design @ beta, as given.

    Parameters
    ----------
    fixed : array_like
        M at beta = 0, a vector or a matrix shaped like the parameter.
    design : array_like, shape (fixed.size, k)
        How the free values enter vec(M), vec stacking the columns of M; full
        column rank.
    names : sequence of str, optional
        A name for each free value (default ``beta[0]``, ``beta[1]``, ...).

    Returns
    -------
    Constraint
        The constraint.

    Raises
    ------
    ValueError
        If the arrays are not finite, their sizes do not match, the design is
        rank deficient, or the names are not k distinct strings.

    Examples
    --------
    A 2 x 2 matrix [[a, 0], [0, 2 a]]:

    >>> c = linear([[0.0, 0.0], [0.0, 0.0]], [[1.0], [0.0], [0.0], [2.0]], names=["a"])
    >>> c.matrix([1.5])
    array([[1.5, 0. ],
           [0. , 3. ]])
    """
    f = _finite("fixed", fixed)
    shape = _shape("fixed", f)
    d = _finite("design", design)
    if d.ndim != 2 or d.shape[0] != f.size:
        raise ValueError(f"design: expected shape ({f.size}, k), got {d.shape}")
    if d.shape[1] > 0 and np.linalg.matrix_rank(d) < d.shape[1]:
        raise ValueError(f"design: expected full column rank, got rank {np.linalg.matrix_rank(d)} of {d.shape[1]}")
    k = d.shape[1]
    labels = tuple(f"beta[{i}]" for i in range(k)) if names is None else tuple(names)
    if len(labels) != k or len(set(labels)) != k or not all(isinstance(n, str) and n for n in labels):
        raise ValueError(f"names: expected {k} distinct non-empty strings, got {names!r}")
    return Constraint(shape, f.reshape(-1, order="F"), np.array(d, dtype=float), labels)


def diagonal(entries) -> Constraint:
    """A diagonal covariance, entry by entry: names are free variances, numbers fixed.

    Parameters
    ----------
    entries : int or sequence of float or str
        The diagonal, for example ``["level", "slope", 0.0]`` (a deterministic third
        state) or ``["v", "v"]`` (equal variances); an int n gives n distinct variances
        ``var[0]``, ..., ``var[n-1]``.

    Returns
    -------
    Constraint
        The n x n constraint, zero off the diagonal.

    Raises
    ------
    ValueError
        If an entry is neither a finite number nor a non-empty name.

    Examples
    --------
    >>> diagonal(["a", 0.0, "a"]).matrix([2.0])
    array([[2., 0., 0.],
           [0., 0., 0.],
           [0., 0., 2.]])
    """
    if isinstance(entries, (int, np.integer)) and not isinstance(entries, bool):
        entries = [f"var[{i}]" for i in range(int(entries))]
    diag = list(entries) if isinstance(entries, (list, tuple, np.ndarray)) else None
    if not diag:
        raise ValueError(f"entries: expected a positive int or a non-empty sequence, got {entries!r}")
    grid: list = [[0.0] * len(diag) for _ in diag]
    for i, e in enumerate(diag):
        grid[i][i] = e
    return pattern(grid)


def equalvarcov(n: int, variance: str = "variance", covariance: str = "covariance") -> Constraint:
    """An n x n covariance with one variance on the diagonal and one covariance off it (MARSS's "equalvarcov").

    Parameters
    ----------
    n : int
        The dimension, at least 1.
    variance, covariance : str
        The two free values' names.

    Returns
    -------
    Constraint
        The constraint (with n = 1 only the variance).

    Raises
    ------
    ValueError
        If n is not a positive int or the names are not distinct non-empty strings.
    """
    from ._checks import count

    n = count("n", n, 1)
    if variance == covariance:
        raise ValueError(f"covariance: expected a name other than the variance's, got {covariance!r}")
    return pattern([[variance if i == j else covariance for j in range(n)] for i in range(n)])


def unconstrained(n: int, name: str = "cov") -> Constraint:
    """An n x n covariance with every entry free: ``name[i,j]`` for i >= j, shared with (j, i).

    Parameters
    ----------
    n : int
        The dimension, at least 1.
    name : str
        The prefix of the free values' names.

    Returns
    -------
    Constraint
        The constraint, n (n + 1) / 2 free values (a block for `block_diagonal`).

    Raises
    ------
    ValueError
        If n is not a positive int.
    """
    from ._checks import count

    n = count("n", n, 1)
    return pattern([[f"{name}[{max(i, j)},{min(i, j)}]" for j in range(n)] for i in range(n)])


def block_diagonal(*blocks) -> Constraint:
    """A block-diagonal covariance from square blocks: constraints, or fixed matrices.

    Free values with the same name in different blocks are tied.

    Parameters
    ----------
    *blocks : Constraint or array_like
        Square constraints (`diagonal`, `unconstrained`, `pattern`, ...) or square
        arrays of fixed values (a known block, zeros for deterministic states).

    Returns
    -------
    Constraint
        The constraint over the whole matrix, zero between blocks.

    Raises
    ------
    ValueError
        If no block is given or a block is not square.

    Examples
    --------
    >>> c = block_diagonal(diagonal(["level"]), np.zeros((2, 2)), unconstrained(2, "ar"))
    >>> c.shape, c.names
    ((5, 5), ('level', 'ar[0,0]', 'ar[1,0]', 'ar[1,1]'))
    """
    if not blocks:
        raise ValueError("blocks: expected at least one block, got none")
    grids = []
    for k, b in enumerate(blocks):
        if isinstance(b, Constraint):
            if len(b.shape) != 2 or b.shape[0] != b.shape[1]:
                raise ValueError(f"blocks[{k}]: expected a square constraint, got shape {b.shape}")
            grids.append(_entries_of(b))
        else:
            a = _finite(f"blocks[{k}]", b)
            if a.ndim != 2 or a.shape[0] != a.shape[1] or a.size == 0:
                raise ValueError(f"blocks[{k}]: expected a square matrix, got shape {a.shape}")
            grids.append(a.astype(object))
    n = sum(g.shape[0] for g in grids)
    whole = np.zeros((n, n), dtype=object)
    at = 0
    for g in grids:
        whole[at : at + g.shape[0], at : at + g.shape[0]] = g
        at += g.shape[0]
    return pattern(whole.tolist())


def _entries_of(c: Constraint) -> np.ndarray:
    """A pattern's entries back from the constraint (names where one free value enters with weight 1)."""
    flat = np.array(c.fixed, dtype=object)
    for j, name in enumerate(c.names):
        rows = np.flatnonzero(c.design[:, j])
        if (
            not np.all(c.design[rows, j] == 1.0)
            or np.count_nonzero(c.design[rows]) != rows.size
            or np.any(c.fixed[rows] != 0.0)
        ):
            raise ValueError(f"blocks: expected a pattern constraint (free values with weight 1), got {name!r}")
        flat[rows] = name
    return flat.reshape(c.shape, order="F")
