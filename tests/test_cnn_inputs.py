"""The AR(1) innovation input of the ``cnn`` networks against simulated AR(1) calcium."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from cabench.benchmark.learned.inputs import MAX_G, ar1_coefficient, innovation, model_inputs


def _ar1(g: float, rng: np.random.Generator, shape=(20, 6000), rate=0.05):
    """Spike counts and the AR(1) calcium they cause (1 per spike, decay g per frame)."""
    s = rng.poisson(rate, shape).astype(float)
    return s, lfilter([1.0], [1.0, -g], s, axis=-1)


@pytest.mark.parametrize("g", [0.6, 0.9, 0.97])
def test_decay_factor_is_recovered_through_white_noise(g):
    rng = np.random.default_rng(int(g * 100))
    _, c = _ar1(g, rng, shape=(20, 20000))
    noisy = c + rng.normal(0, 0.5, c.shape)  # noise SD half a spike's jump
    est = ar1_coefficient(noisy)
    assert est.shape == (20,)
    assert abs(np.median(est) - g) < 0.03 and est.std() < 0.05


def test_innovation_of_calcium_is_the_spike_train():
    rng = np.random.default_rng(3)
    s, c = _ar1(0.9, rng)
    c = c + 0.3  # a baseline only adds a constant (1 - g) * baseline
    inn = innovation(c)
    assert np.allclose(ar1_coefficient(c), 0.9, atol=0.02)
    for k in range(3):
        assert np.corrcoef(inn[k, 1:], s[k, 1:])[0, 1] > 0.99
        assert np.corrcoef(c[k, 1:], s[k, 1:])[0, 1] < 0.5  # the calcium itself is not


def test_channels_limits_and_short_traces():
    walk = np.cumsum(np.random.default_rng(0).normal(size=(2, 3, 5000)), axis=-1)
    assert np.all(ar1_coefficient(walk) == MAX_G)  # no decay: clipped
    x = walk.astype(np.float32)
    both = model_inputs(x, "dff+innovation")
    assert both.shape == (2, 3, 2, 5000) and both.dtype == np.float32
    np.testing.assert_array_equal(both[..., 0, :], x)
    np.testing.assert_array_equal(both[..., 1, :], model_inputs(x, "innovation")[..., 0, :])
    assert np.all(ar1_coefficient(np.ones(5)) == 0)  # too short to estimate: no decay removed
    assert np.all(ar1_coefficient(np.full(100, 2.0)) == 0)  # constant: no autocovariance
