"""The axis fit's helpers are numpy's ``norm``, ``mean`` and ``std`` to the last bit.

They call the ufuncs those functions call, without the Python around them (the
fit runs every second per exercising wearable); any difference, even of one
ulp, could move a turning point and change what the counter finds.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.workout.axis import block_means, deviation, length, lengths


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [3, 7, 25, 150, 301])
def test_the_helpers_are_numpys_functions(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    wide = rng.normal(1.0, rng.uniform(0.01, 10), (n, 6))
    y = wide[:, :3]  # the detector's view: every other triple of a wider array
    assert length(y[0]) == float(np.linalg.norm(y[0]))
    np.testing.assert_array_equal(lengths(y), np.linalg.norm(y, axis=1))
    assert deviation(y[:, 1]) == float(y[:, 1].std())
    assert deviation(y @ np.array([0.6, 0.0, 0.8])) == float((y @ np.array([0.6, 0.0, 0.8])).std())
    for k in (k for k in (1, 2, 25) if k <= n):  # the fit has a block at least
        blocks = n // k
        part = y[n - blocks * k :]
        want = part.reshape(blocks, k, -1).mean(axis=1, keepdims=True)
        np.testing.assert_array_equal(block_means(part, blocks, k), want)
