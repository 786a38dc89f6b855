"""Random keys: an int seed, a NumPy Generator, or a JAX PRNG key."""

from __future__ import annotations

import numpy as np


def as_generator(key) -> np.random.Generator:
    """A NumPy Generator determined by ``key``."""
    if isinstance(key, np.random.Generator):
        return key
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if key < 0:
            raise ValueError(f"key: expected an int seed >= 0, a numpy.random.Generator or a JAX PRNG key, got {key}")
        return np.random.default_rng(int(key))
    if type(key).__module__.startswith("jax"):
        import jax  # only reached when the caller already uses JAX

        data = key
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            data = jax.random.key_data(key)
        words = np.asarray(data, dtype=np.uint32).ravel()
        return np.random.default_rng(np.random.SeedSequence(words.tolist()))
    raise ValueError(f"key: expected an int seed, a numpy.random.Generator or a JAX PRNG key, got {type(key).__name__}")


def seeds(key, count: int) -> list[int]:
    """``count`` 63-bit seeds for the C++ core, drawn from ``key``."""
    return [int(s) for s in as_generator(key).integers(0, 2**63 - 1, size=count)]
