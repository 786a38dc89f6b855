"""Data from .npy and .npz files, each array checked against its header before it is allocated."""

from __future__ import annotations

import math
import os
import zipfile
import zlib

import numpy as np

from .._batch import padded_lengths
from .._checks import memory
from .data import Data
from .errors import DataError

_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(fh, size: int, where: str) -> np.ndarray:
    """The numeric array in an open .npy stream of ``size`` bytes, checked against its
    header before anything is allocated: a truncated file or one whose header declares
    more data than it holds (or than fits in memory) is a DataError."""
    try:
        version = np.lib.format.read_magic(fh)
        if version not in _NPY_HEADERS:
            raise DataError(
                f"{where}: .npy format version {version[0]}.{version[1]} is not supported (expected 1.0 or 2.0)"
            )
        shape, fortran_order, dtype = _NPY_HEADERS[version](fh)
    except DataError:
        raise
    except (ValueError, TypeError, EOFError, OSError, SyntaxError) as err:
        raise DataError(f"{where}: not a readable .npy file ({err})") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise DataError(f"{where}: expected numbers, got an array of dtype {dtype}")
    if any(d < 0 for d in shape):
        raise DataError(f"{where}: not a readable .npy file (negative dimension in shape {shape})")
    count = math.prod(shape)
    try:
        memory(where, f"shape {shape}", count, "the array declared in its header", "a smaller array")
    except ValueError as err:
        raise DataError(str(err)) from None
    need, have = count * dtype.itemsize, size - fh.tell()
    if need > have:
        raise DataError(
            f"{where}: truncated: the header declares shape {shape} ({need} bytes of data), "
            f"but the file holds {max(have, 0)}"
        )
    a = np.empty(count, dtype=dtype)
    buffer, done = a.view(np.uint8), 0
    while done < need:
        got = fh.readinto(buffer[done:])
        if not got:
            raise DataError(f"{where}: truncated: expected {need} bytes of data, got {done}")
        done += got
    return a.reshape(shape, order="F" if fortran_order else "C")


def read_npy(path: str) -> Data:
    """The emissions in a .npy file (no inputs)."""
    with open(path, "rb") as fh:
        emissions = _read_npy(fh, os.fstat(fh.fileno()).st_size, path)
    return Data(_emissions_array(emissions, path, "emissions"), None)


def _numeric(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected numbers, got an array of dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _emissions_array(a, path: str, key: str) -> np.ndarray:
    where = f"{path}" if key == "emissions" and path.endswith(".npy") else f"{path}: {key}"
    a = _numeric(np.asarray(a), where)
    if a.ndim not in (2, 3) or a.shape[-1] < 1 or a.shape[-2] < 1 or (a.ndim == 3 and a.shape[0] < 1):
        raise DataError(
            f"{where}: expected shape (num_timesteps, emission_dim) or (num_sequences, num_timesteps, "
            f"emission_dim), got {a.shape}"
            + (" (reshape a single series to (num_timesteps, 1))" if a.ndim == 1 else "")
        )
    if np.isinf(a).any():
        idx = tuple(int(i) for i in np.argwhere(np.isinf(a))[0])
        raise DataError(f"{where}: expected finite values or NaN (missing), got {a[idx]} at index {idx}")
    return a


def _npz_arrays(path: str, names: tuple) -> dict:
    """The arrays ``names`` (those present) of a .npz file, each checked as by ``_read_npy``;
    a missing 'emissions' is an error."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4]: zf.getinfo(n) for n in zf.namelist() if n.endswith(".npy")}
            if "emissions" not in members:
                raise DataError(f"{path}: no array named 'emissions' (found {', '.join(members) or 'none'})")
            out = {}
            for name in names:
                if name in members:
                    with zf.open(members[name]) as fh:
                        out[name] = _read_npy(fh, members[name].file_size, f"{path}: {name}")
            return out
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise DataError(f"{path}: not a readable .npz file ({err})") from None


def read_npz(path: str) -> Data:
    """Emissions, inputs and times (those present) from a .npz file."""
    arrays = _npz_arrays(path, ("emissions", "inputs", "times"))
    y = _emissions_array(arrays["emissions"], path, "emissions")
    u = _numeric(arrays["inputs"], f"{path}: inputs") if "inputs" in arrays else None
    t = _numeric(arrays["times"], f"{path}: times") if "times" in arrays else None
    lengths = padded_lengths(y) if y.ndim == 3 else [y.shape[0]]
    if u is not None:
        if u.ndim != y.ndim or u.shape[:-1] != y.shape[:-1]:
            raise DataError(
                f"{path}: inputs: expected shape {y.shape[:-1] + ('input_dim',)} to match emissions, "
                f"got {u.shape}".replace("'input_dim'", "input_dim")
            )
        for b, (useq, n) in enumerate(zip(u if u.ndim == 3 else [u], lengths)):
            bad = np.argwhere(~np.isfinite(useq[:n]))
            if bad.size:
                idx = ((b,) if u.ndim == 3 else ()) + tuple(int(i) for i in bad[0])
                raise DataError(
                    f"{path}: inputs: expected finite values (inputs cannot be missing), got {u[idx]} at index {idx}"
                )
    if t is not None:
        if t.shape != y.shape[:-1]:
            raise DataError(f"{path}: times: expected shape {y.shape[:-1]} to match emissions, got {t.shape}")
        for b, (tseq, n) in enumerate(zip(t if t.ndim == 2 else [t], lengths)):
            _check_times(tseq[:n], f"{path}: times" + (f" of sequence {b}" if t.ndim == 2 else ""))
    return Data(y, u, times=t)


def _check_times(t: np.ndarray, where: str):
    if not np.all(np.isfinite(t)):
        raise DataError(f"{where}: expected finite values, got {t[~np.isfinite(t)][0]}")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        i = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise DataError(f"{where}: expected strictly increasing times, got {t[i]!r} then {t[i + 1]!r}")
