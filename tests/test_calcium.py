"""Calcium model: kernels against oasis/scipy, sub-frame timing, nonlinearity, noise."""

import numpy as np
import pytest
from scipy import stats
from scipy.signal import lfilter

from cabench.noise_level import noise_level_nu
from cabench.simulators import calcium as ca


def _render(times_per_row, fr, n_frames, decay, rise, amp=1.0, hill=1.0, sat=0.0, subframe=True,
            weights=None):
    parts = [np.asarray(t, float) for t in times_per_row]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    times = np.concatenate(parts)
    w = np.ones(times.size) if weights is None else weights
    out = np.empty((len(parts), n_frames), np.float32)
    ca.render_calcium(out, times, w, offsets, fr, decay, rise, subframe,
                      np.full(len(parts), amp, np.float32), hill, sat)
    return out


def test_ar_coefficients_follow_oasis_convention():
    oasis = pytest.importorskip("oasis")
    assert ca.ar_coefficients(0.5, 0, 30) == pytest.approx((oasis.tau_to_ar1(0.5, 30),))
    assert ca.ar_coefficients(0.5, 0.05, 30) == pytest.approx(oasis.tau_to_ar2(0.5, 0.05, 30))
    assert ca.ar_coefficients(0.8, 0, 24)[0] == pytest.approx(np.exp(-1 / (0.8 * 24)))


def test_frame_locked_kernels_equal_ar_filters():
    rng = np.random.default_rng(0)
    fr, n = 30.0, 3000
    frames = np.sort(rng.choice(n - 1, 60, replace=False)) + 1
    s = np.zeros(n)
    s[frames] = 1
    times = frames / fr - 0.4 / fr  # inside the interval before each frame; snapped to it
    for decay, rise in [(0.6, 0.0), (0.6, 0.05)]:
        got = _render([times], fr, n, decay, rise, subframe=False)[0]
        g = ca.ar_coefficients(decay, rise, fr)
        if rise == 0:
            want = lfilter([1.0], [1.0, -g[0]], s)
        else:  # AR(2) with oasis's coefficients; a spike shows from the next frame on
            gd, gr = np.exp(-1 / (decay * fr)), np.exp(-1 / (rise * fr))
            want = lfilter([0.0, gd - gr], [1.0, -g[0], -g[1]], s) / ca.kernel_peak(decay, rise)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_oasis_recovers_spikes_from_noiseless_ar1_trace():
    oasis = pytest.importorskip("oasis")
    rng = np.random.default_rng(1)
    fr, n, decay = 30.0, 5000, 0.7
    frames = np.sort(rng.choice(np.arange(1, n), 80, replace=False))
    y = _render([frames / fr], fr, n, decay, 0.0, subframe=False)[0].astype(float)
    g = ca.ar_coefficients(decay, 0.0, fr)[0]
    c, s = oasis.oasisAR1(y, g, lam=0.0)
    s_true = np.zeros(n)
    s_true[frames] = 1
    np.testing.assert_allclose(s, s_true, atol=1e-4)


def test_subframe_timing_samples_the_continuous_kernel():
    fr, decay, rise = 30.0, 0.5, 0.04
    t_spike = 10.37 / fr
    out = _render([[t_spike]], fr, 100, decay, rise)[0]
    t = np.arange(100) / fr - t_spike
    h = np.where(t >= 0, np.exp(-t / decay) - np.exp(-t / rise), 0) / ca.kernel_peak(decay, rise)
    np.testing.assert_allclose(out, h, atol=2e-6)
    assert out.max() <= 1.0 + 1e-6  # normalised to a peak of one spike's amplitude


def test_hill_saturation_nonlinearity():
    fr, amp, hill, sat = 100.0, 0.2, 2.0, 0.1
    one = _render([[0.5]], fr, 200, 1.0, 0.0, amp, hill, sat, subframe=False)[0]
    two = _render([[0.5, 0.5]], fr, 200, 1.0, 0.0, amp, hill, sat, subframe=False)[0]
    assert one.max() == pytest.approx(amp, rel=1e-5)  # one spike peaks at the amplitude
    want_two = amp * (1 + sat) * 4 / (1 + sat * 4)
    assert two.max() == pytest.approx(want_two, rel=1e-5)  # supralinear, saturating


def test_counter_based_noise_is_standard_normal_and_independent():
    keys = ca.noise_keys(1234, np.zeros(4, int), np.arange(4), 4)
    z = ca.standard_normals(keys, 100000).astype(float)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert stats.kstest(z[0], "norm").pvalue > 1e-3
    assert abs(stats.kurtosis(z[1])) < 0.05
    tail = np.mean(np.abs(z) > 3.0)  # ziggurat tail and wedges: P(|z| > 3) = 0.0026998
    assert tail == pytest.approx(2 * stats.norm.sf(3.0), rel=0.12)
    assert np.mean(np.abs(z) > 3.6541528853610088) > 0  # draws beyond the base strip exist
    for row in z:
        assert abs(np.corrcoef(row[1:], row[:-1])[0, 1]) < 0.015  # white
        assert abs(np.corrcoef(row[::2], row[1::2])[0, 1]) < 0.015  # Box-Muller pairs
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < 0.015  # rows independent
    # value depends only on (key, frame): a prefix is the same as the full draw
    np.testing.assert_array_equal(ca.standard_normals(keys, 999), z[:, :999].astype(np.float32))


@pytest.mark.parametrize("shot", [0.0, 0.6])
@pytest.mark.parametrize("nu", [1.0, 2.0, 8.0])
def test_sigma_for_nu_hits_target_noise_level(nu, shot):
    fr, n = 30.0, 20000
    rng = np.random.default_rng(int(nu * 10 + shot * 100))
    clean = _render([np.sort(rng.uniform(0, n / fr, 600)) for _ in range(3)], fr, n, 0.3,
                    0.02, amp=0.5)
    keys = ca.noise_keys(7, np.zeros(3, int), np.arange(3), 3)
    sigma = ca.sigma_for_nu(clean, keys, nu, fr, shot, 20000)
    noisy = clean.copy()
    ca.add_noise(noisy, keys, sigma.astype(np.float32), np.float32(shot))
    np.testing.assert_allclose(noise_level_nu(noisy, fr), nu, rtol=0.02)


def test_shot_noise_variance_grows_with_brightness():
    n = 200000
    clean = np.tile(np.array([[0.0], [1.0], [3.0]], np.float32), (1, n))
    keys = ca.noise_keys(3, np.zeros(3, int), np.arange(3), 3)
    noisy = clean.copy()
    ca.add_noise(noisy, keys, np.full(3, 0.1, np.float32), np.float32(0.5))
    var = (noisy - clean).var(axis=1)
    np.testing.assert_allclose(var, 0.01 * (0.5 + 0.5 * (1 + clean[:, 0])), rtol=0.02)


def test_ou_process_has_requested_sd_and_timescale():
    rng = np.random.default_rng(5)
    x = ca.ou_process(200, 6000, 10.0, 2.0, 0.05, rng).astype(float)
    assert x.std() == pytest.approx(0.05, rel=0.05)
    lag = 20  # 2 s = one timescale: autocorrelation exp(-1)
    r = np.mean([np.corrcoef(row[lag:], row[:-lag])[0, 1] for row in x])
    assert r == pytest.approx(np.exp(-1), abs=0.05)
