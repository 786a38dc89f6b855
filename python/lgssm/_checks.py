"""Argument checks shared by the Python API, the file readers and the command line.

Every check raises ValueError with a message "<argument>: expected <what>, got <what>".

- ``count``: an integer count (int or NumPy integer; not bool, float or str).
- ``flag``: a bool (or NumPy bool).
- ``nonnegative``: a finite real number >= 0 (tolerances).
- ``real_array``: array-like real numbers as float64 (NumPy, JAX, lists, pandas with
  ``pd.NA`` read as NaN); strings, None, objects, ragged nesting and complex values are errors.
- ``memory``: refuses a call whose arrays would need more bytes than ``memory_limit()``,
  the machine's physical memory (64 GiB where it cannot be read), before anything is
  allocated. Callers estimate the bytes of the float64 arrays they are about to create.
"""

from __future__ import annotations

import operator
import os
import sys

import numpy as np

_FALLBACK_MEMORY = 64 * 2**30


def _shown(value) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})" if not isinstance(value, (int, np.integer)) else text


INT_MAX = 2**31 - 1  # the largest iteration count the C++ core takes (a C int)


def count(name: str, value, low: int = 0, high: int | None = None) -> int:
    """``value`` as a Python int in [low, high]; a bool, float, string or None is an error
    (2.5 would otherwise be truncated to 2, and '10' or True taken for numbers)."""
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if not isinstance(value, (bool, np.bool_)):
        try:
            number = operator.index(value)
        except TypeError:
            pass
        else:
            if number >= low and (high is None or number <= high):
                return int(number)
            raise ValueError(f"{name}: expected {expected}, got {number}")
    raise ValueError(f"{name}: expected {expected}, got {_shown(value)}")


def flag(name: str, value) -> bool:
    """``value`` as a bool; anything but True/False (e.g. the string 'no', which is truthy) is an error."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name}: expected True or False, got {_shown(value)}")


def nonnegative(name: str, value) -> float:
    """``value`` as a finite float >= 0."""
    if not isinstance(value, (bool, np.bool_, str, bytes)) and value is not None:
        try:
            x = float(value)
        except (TypeError, ValueError):
            pass
        else:
            if np.isfinite(x) and x >= 0:
                return x
            raise ValueError(f"{name}: expected a finite number >= 0, got {x!r}")
    raise ValueError(f"{name}: expected a finite number >= 0, got {_shown(value)}")


def _is_real(x) -> bool:
    if isinstance(x, (str, bytes, complex, np.str_, np.bytes_, np.complexfloating)):
        return False
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def _pandas_na():
    pandas = sys.modules.get("pandas")  # pd.NA can only come from an imported pandas
    return getattr(pandas, "NA", None) if pandas is not None else None


def real_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 array. pandas objects (nullable dtypes too) and lists
    holding ``pd.NA`` give NaN there (missing); complex values are an error, never
    silently cut to their real part."""
    what = "real numbers"
    if value is None:
        raise ValueError(f"{name}: expected an array of {what}, got None")
    if hasattr(value, "to_numpy") and not isinstance(value, np.ndarray):  # pandas Series / DataFrame / arrays
        try:
            value = value.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name}: expected {what}, got a {type(value).__name__} that is not numeric ({err})"
            ) from None
    try:
        a = np.asarray(value)
    except ValueError:  # NumPy >= 1.24 refuses ragged nesting
        raise ValueError(
            f"{name}: expected a rectangular array of {what}, got a ragged nested "
            f"{type(value).__name__} (rows of different lengths)"
        ) from None
    kind = a.dtype.kind
    if kind in "biuf":
        return a.astype(np.float64, copy=False)
    if kind == "c":
        raise ValueError(
            f"{name}: expected {what}, got complex values (dtype {a.dtype}); pass the real part "
            f"explicitly if the imaginary part is meant to be dropped"
        )
    if kind == "O":
        na = _pandas_na()
        if na is not None:
            a = np.where(np.asarray(np.frompyfunc(lambda x: x is na, 1, 1)(a), dtype=bool), np.nan, a)
        index = next((i for i in np.ndindex(*a.shape) if not _is_real(a[i])), None)
        if index is None:
            return a.astype(np.float64)
        where = f" at index {index}" if a.ndim else ""
        raise ValueError(f"{name}: expected {what}, got {_shown(a[index])}{where}")
    if kind in "USa":
        first = str(a.flat[0])[:40] if a.size else ""
        raise ValueError(f"{name}: expected {what}, got strings ({first!r}{', ...' if a.size > 1 else ''})")
    raise ValueError(f"{name}: expected {what}, got an array of dtype {a.dtype}")


def memory_limit() -> int:
    """Bytes that one call may allocate: the machine's physical memory."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MEMORY
    return pages * size if pages > 0 and size > 0 else _FALLBACK_MEMORY


def _bytes(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def memory(name: str, value, num_floats: int, what: str, expected: str = "a smaller value") -> None:
    """Refuses ``name`` = ``value`` when it would make the call allocate ``num_floats``
    float64 values (described by ``what``) beyond ``memory_limit()``."""
    need, limit = 8 * int(num_floats), memory_limit()
    if need > limit:
        raise ValueError(
            f"{name}: {value} would need {_bytes(need)} for {what}, more than this machine's "
            f"memory ({_bytes(limit)}); expected {expected}"
        )


def require_observed(name: str, sequences) -> None:
    """Refuses data in which every value is missing (NaN): there is nothing to fit."""
    if all(np.isnan(y).all() for y in sequences):
        raise ValueError(
            f"{name}: expected at least one observed value, got only missing values (NaN); there is nothing to fit"
        )


def unscaled(sequences, low: float = 0.1, high: float = 10.0) -> str | None:
    """A warning for gradient fits when a component's scale, max(|mean|, standard
    deviation) over its observed values, is outside [low, high]: Adam moves each
    parameter by about the learning rate per step, so from the default start it cannot
    reach data of scale 1000 (or 0.001) in any usual number of epochs. None otherwise."""
    y = np.concatenate([np.asarray(s, dtype=np.float64) for s in sequences])
    observed = ~np.isnan(y)
    for j in range(y.shape[1]):
        v = y[observed[:, j], j]
        if v.size == 0:
            continue
        mean, std = float(np.mean(v)), float(np.std(v))
        scale = max(abs(mean), std)
        if not low <= scale <= high:
            return (
                f"emissions: component {j} has mean {mean:.3g} and standard deviation {std:.3g}, far from the "
                f"unit scale at which Adam's steps (about the learning rate each) can reach a fit; standardize "
                f"the data (subtract each component's mean, divide by its standard deviation) or use EM"
            )
    return None
