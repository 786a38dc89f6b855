"""lgssm.utils: random_rotation and monotonically_increasing, with dynamax's semantics."""

import numpy as np
import pytest

from lgssm.utils import monotonically_increasing, random_rotation

from conftest import assert_close


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("theta", [np.pi / 10, 1.0, 2.5])
def test_random_rotation_is_a_rotation_by_theta(n, theta):
    A = random_rotation(4, n, theta=theta)
    assert isinstance(A, np.ndarray) and A.shape == (n, n)
    assert_close(A @ A.T, np.eye(n), "A A^T", rtol=0, atol=1e-12)
    assert abs(np.linalg.det(A) - 1.0) < 1e-12
    # Eigenvalues exp(+-i theta) and n - 2 ones.
    eig = np.linalg.eigvals(A)
    want = np.concatenate([[np.exp(1j * theta), np.exp(-1j * theta)], np.ones(n - 2)])
    for w in want:
        k = np.argmin(np.abs(eig - w))
        assert abs(eig[k] - w) < 1e-9, (eig, want)
        eig = np.delete(eig, k)


def test_random_rotation_deterministic_in_seed():
    assert np.array_equal(random_rotation(3, 4, theta=0.3), random_rotation(3, 4, theta=0.3))
    assert not np.allclose(random_rotation(3, 4, theta=0.3), random_rotation(5, 4, theta=0.3))


def test_random_rotation_default_angle_within_quarter_turn():
    for seed in range(5):
        A = random_rotation(seed, 3)
        assert_close(A @ A.T, np.eye(3), "A A^T", rtol=0, atol=1e-12)
        # The rotation angle of a 3-d rotation: trace = 1 + 2 cos(theta), theta in [0, pi/2].
        cos_theta = (np.trace(A) - 1.0) / 2.0
        assert -1e-12 <= cos_theta <= 1.0 + 1e-12


def test_random_rotation_notebook_call():
    A = 0.99 * random_rotation(0, 2, theta=np.pi / 10)
    assert_close(np.abs(np.linalg.eigvals(A)), [0.99, 0.99], "|eig|")
    assert_close(np.sort(np.abs(np.angle(np.linalg.eigvals(A)))), [np.pi / 10] * 2, "angle")


@pytest.mark.parametrize(
    "x, kwargs, result",
    [
        ([1.0, 2.0, 3.0], {}, True),
        ([1.0, 2.0, 2.0], {}, True),  # equal steps are allowed
        ([1.0, 3.0, 2.0], {}, False),
        ([5.0], {}, True),
        ([1.0, 3.0, 2.0], {"atol": 1.0}, True),  # diff -1 >= -1
        ([1.0, 3.0, 2.0], {"atol": 0.99}, False),
        ([10.0, 9.5], {"rtol": 0.05}, True),  # threshold rtol * |x[:-1]| = 0.5
        ([10.0, 9.5], {"rtol": 0.04}, False),
        ([-10.0, -10.5], {"rtol": 0.05}, True),  # |x| is used
        ([-10.0, -10.5], {"rtol": 0.04}, False),
        ([10.0, 9.0], {"atol": 0.5, "rtol": 0.05}, True),  # atol and rtol add up
        ([10.0, 9.0], {"atol": 0.4, "rtol": 0.05}, False),
    ],
)
def test_monotonically_increasing(x, kwargs, result):
    assert bool(monotonically_increasing(np.array(x), **kwargs)) is result
    assert bool(monotonically_increasing(x, **kwargs)) is result
