"""Tests of the spike-train models: each recovers a known truth within a stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtri

from cabench.simulators import spikes as sp

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _isis(times, offsets):
    """Inter-spike intervals inside cells (pairs straddling two cells are dropped)."""
    d = np.diff(times)
    valid = np.ones(d.size, dtype=bool)
    starts = offsets[1:-1]
    starts = starts[(starts > 0) & (starts < times.size)]
    valid[starts - 1] = False
    return d[valid]


def _check_ragged(times, offsets, n_cells, duration):
    assert times.dtype == np.float64 and offsets.dtype == np.int64
    assert offsets.shape == (n_cells + 1,)
    assert offsets[0] == 0 and offsets[-1] == times.size
    assert np.all(np.diff(offsets) >= 0)
    if times.size:
        assert times.min() >= 0 and times.max() < duration
        assert np.all(_isis(times, offsets) >= 0)


def _binary(times, offsets, n_frames, frame_rate):
    """(cells, frames) spike indicators; asserts at most one spike per frame."""
    n = offsets.size - 1
    cell = np.repeat(np.arange(n), np.diff(offsets))
    frame = np.floor(times * frame_rate).astype(np.int64)
    key = cell * n_frames + frame
    assert np.unique(key).size == key.size, "two spikes in one frame"
    out = np.zeros((n, n_frames), dtype=bool)
    out[cell, frame] = True
    return out


def _counts(times, offsets, n_bins, width):
    n = offsets.size - 1
    cell = np.repeat(np.arange(n), np.diff(offsets))
    c = np.zeros((n, n_bins))
    np.add.at(c, (cell, (times / width).astype(np.int64)), 1)
    return c


# --------------------------------------------------------------------------------------------
# rates
# --------------------------------------------------------------------------------------------


def test_lognormal_rates_median_sigma_and_clip():
    rng = np.random.default_rng(1)
    r = sp.lognormal_rates(200_000, 0.5, 1.0, rng)
    assert abs(np.median(r) / 0.5 - 1) < 0.015
    assert abs(np.std(np.log(r)) - 1.0) < 0.01
    rc = sp.lognormal_rates(200_000, 0.5, 1.0, np.random.default_rng(1), max_hz=2.0)
    assert rc.max() <= 2.0
    # fraction clipped = P(Z > ln 4) = 0.0829
    assert abs(np.mean(rc == 2.0) - stats.norm.sf(np.log(4.0))) < 0.003
    np.testing.assert_array_equal(rc, np.minimum(r, 2.0))  # same seed, same draws


def test_rng_must_be_generator():
    with pytest.raises(ValueError, match="Generator"):
        sp.poisson_trains([1.0], 1.0, 42)


# --------------------------------------------------------------------------------------------
# Poisson with refractory period
# --------------------------------------------------------------------------------------------


def test_poisson_mean_rate_and_refractory():
    rng = np.random.default_rng(2)
    rates = sp.lognormal_rates(4000, 2.0, 0.5, rng)
    T, d = 50.0, 0.005
    times, offsets = sp.poisson_trains(rates, T, rng, refractory_s=d)
    _check_ragged(times, offsets, 4000, T)
    counts = np.diff(offsets)
    assert abs(counts.sum() / (rates.sum() * T) - 1) < 0.01  # SE 0.2 %
    # per quartile of rate, within 3 % (SE <= 0.5 %)
    q = np.argsort(rates).reshape(4, -1)
    for g in q:
        assert abs(counts[g].sum() / (rates[g].sum() * T) - 1) < 0.03
    assert _isis(times, offsets).min() >= d  # exactly, in floating point


def test_poisson_dead_time_law_at_high_rate():
    # r d = 0.5: the raised rate is essential (a plain Poisson at r with deletion gives 33 Hz)
    rng = np.random.default_rng(3)
    r, d, T = 50.0, 0.01, 20.0
    times, offsets = sp.poisson_trains(np.full(400, r), T, rng, refractory_s=d)
    assert abs(times.size / (400 * r * T) - 1) < 0.01
    isi = _isis(times, offsets)
    assert isi.min() >= d
    excess = isi - d  # Exponential with mean (1 - r d) / r = 10 ms
    assert abs(excess.mean() / ((1 - r * d) / r) - 1) < 0.02
    assert stats.kstest(excess, "expon", args=(0, (1 - r * d) / r)).pvalue > 1e-3


def test_poisson_is_stationary_from_time_zero():
    # E[count in [0, d)] = r d = 0.5; a train started at its last spike would give 0.63
    rng = np.random.default_rng(4)
    r, d, n = 50.0, 0.01, 20_000
    times, offsets = sp.poisson_trains(np.full(n, r), 0.2, rng, refractory_s=d)
    early = np.mean(np.add.reduceat((times < d).astype(int), offsets[:-1]) if times.size else 0)
    assert abs(early - r * d) < 0.015  # SE 0.0035


def test_poisson_without_refractory_and_zero_rates():
    rng = np.random.default_rng(5)
    rates = np.array([0.0, 5.0, 0.0, 20.0])
    times, offsets = sp.poisson_trains(np.repeat(rates, 500), 100.0, rng)
    counts = np.diff(offsets).reshape(4, 500)
    assert counts[0].sum() == 0 and counts[2].sum() == 0
    for k in (1, 3):  # Poisson counts: mean and variance r T
        assert abs(counts[k].mean() / (rates[k] * 100) - 1) < 0.01
        assert abs(counts[k].var() / (rates[k] * 100) - 1) < 0.2


def test_poisson_rejects_unreachable_rates():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="refractory"):
        sp.poisson_trains([10.0, 100.0], 1.0, rng, refractory_s=0.01)
    with pytest.raises(ValueError):
        sp.poisson_trains([-1.0], 1.0, rng)


def test_same_seed_same_trains():
    a = sp.poisson_trains(np.full(10, 3.0), 10.0, np.random.default_rng(9), 0.002)
    b = sp.poisson_trains(np.full(10, 3.0), 10.0, np.random.default_rng(9), 0.002)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# --------------------------------------------------------------------------------------------
# inhomogeneous Poisson
# --------------------------------------------------------------------------------------------


def test_inhomogeneous_follows_rate_profile():
    rng = np.random.default_rng(6)
    dt, nb = 0.01, 1000
    prof = 5 + 4 * np.sin(2 * np.pi * np.arange(nb) * dt)
    prof[100:150] = 0.0  # silent stretch
    rate = np.tile(prof, (500, 1))
    times, offsets = sp.inhomogeneous_trains(rate, dt, rng)
    _check_ragged(times, offsets, 500, nb * dt)
    psth = np.bincount((times / dt).astype(np.int64), minlength=nb)
    assert np.corrcoef(psth, prof)[0, 1] > 0.9
    assert psth[100:150].sum() == 0
    assert abs(times.size / (rate.sum() * dt) - 1) < 0.015  # SE 0.2 %


def test_inhomogeneous_refractory_keeps_rate():
    rng = np.random.default_rng(7)
    dt, nb, d = 0.01, 1000, 0.01
    rate = np.full((2000, nb), 20.0)  # constant: exact
    times, offsets = sp.inhomogeneous_trains(rate, dt, rng, refractory_s=d)
    assert abs(times.size / (rate.sum() * dt) - 1) < 0.01  # SE 0.15 %
    assert _isis(times, offsets).min() >= d
    prof = 20 + 15 * np.sin(2 * np.pi * np.arange(nb) * dt)  # varying: approximate
    rate = np.tile(prof, (2000, 1))
    times, offsets = sp.inhomogeneous_trains(rate, dt, rng, refractory_s=d)
    assert abs(times.size / (rate.sum() * dt) - 1) < 0.015
    assert _isis(times, offsets).min() >= d
    with pytest.raises(ValueError):
        sp.inhomogeneous_trains(np.full((2, 3), 200.0), dt, rng, refractory_s=d)


# --------------------------------------------------------------------------------------------
# bursts
# --------------------------------------------------------------------------------------------


def test_burst_rate_isi_peak_and_refractory():
    rng = np.random.default_rng(8)
    n, T, f, m, isi, d = 2000, 100.0, 0.5, 3.0, 0.008, 0.002
    times, offsets = sp.burst_trains(np.full(n, 2.0), T, rng, f, m, isi, d)
    _check_ragged(times, offsets, n, T)
    assert abs(times.size / (2.0 * n * T) - 1) < 0.02  # SE ~0.3 %
    iv = _isis(times, offsets)
    assert iv.min() >= d
    # intra-burst intervals: f (m - 1) / m of all intervals lie near 8 ms
    peak = np.mean((iv > 0.006) & (iv < 0.010))
    assert abs(peak - f * (m - 1) / m) < 0.03
    # histogram: the 6-10 ms bin dominates its neighbours
    h, _ = np.histogram(iv, bins=np.arange(0, 0.042, 0.004))
    assert h[1:3].sum() > 10 * h[4:6].sum()
    # without bursts: no peak (Poisson at 2 Hz puts ~0.8 % of intervals there)
    t0, o0 = sp.burst_trains(np.full(n, 2.0), T, rng, 0.0, m, isi, d)
    iv0 = _isis(t0, o0)
    assert np.mean((iv0 > 0.006) & (iv0 < 0.010)) < 0.015
    assert abs(t0.size / (2.0 * n * T) - 1) < 0.02


def test_burst_rate_preserved_at_high_rate():
    # r d = 0.04: the dead time removes ~4 % unless compensated
    rng = np.random.default_rng(9)
    times, offsets = sp.burst_trains(np.full(1000, 20.0), 20.0, rng, 0.6, 4.0, 0.006, 0.002)
    assert abs(times.size / (20.0 * 1000 * 20.0) - 1) < 0.01  # SE ~0.3 %
    assert _isis(times, offsets).min() >= 0.002
    with pytest.raises(ValueError):
        sp.burst_trains(np.ones(3), 1.0, rng, 0.5, 3.0, intra_burst_isi_s=0.001)


# --------------------------------------------------------------------------------------------
# shared latent gain
# --------------------------------------------------------------------------------------------


def test_latent_process_unit_variance_and_timescale():
    rng = np.random.default_rng(10)
    dt, tau = 1 / 30, 0.5
    z = sp.latent_process(300_000, dt, tau, rng)
    assert abs(z.mean()) < 0.03 and abs(z.var() - 1) < 0.05
    for lag in (1, 15):
        r = np.corrcoef(z[:-lag], z[lag:])[0, 1]
        assert abs(r - np.exp(-lag * dt / tau)) < 0.02


def _gain_theory(r, b, a, dt, w):
    """Count correlation of two cells and SD of the mean gain under the AR(1) latent."""
    m = np.arange(-(w - 1), w)
    s = np.sum((w - np.abs(m)) * np.expm1(b * b * a ** np.abs(m)))
    return (r * dt) ** 2 * s / (r * dt * w + (r * dt) ** 2 * s)


def test_latent_gain_preserves_rate_and_correlates_counts():
    fr, tau, n, nb, w, r = 30.0, 1.0, 40, 90_000, 15, 2.0
    dt = 1 / fr
    a = np.exp(-dt / tau)
    measured = []
    for b in (0.0, 0.2, 0.5):
        rng = np.random.default_rng(11)
        rate = sp.latent_gain_rates(np.full(n, r), nb, dt, rng, b, tau)
        times, offsets = sp.inhomogeneous_trains(rate, dt, rng)
        # mean rate: the only error is the finite sample of the latent, SD computed exactly
        k = np.arange(-(nb - 1), nb, 97)
        sd_gain = np.sqrt(np.sum(97 * (nb - np.abs(k)) * np.expm1(b * b * a ** np.abs(k))))
        sd_gain = sd_gain / nb + 1 / np.sqrt(times.size + 1)
        assert abs(times.size / (n * r * nb * dt) - 1) < max(4 * sd_gain, 0.01)
        c = np.corrcoef(_counts(times, offsets, nb // w, w * dt))
        mean_corr = c[np.triu_indices(n, 1)].mean()
        assert abs(mean_corr - _gain_theory(r, b, a, dt, w)) < 0.02
        measured.append(mean_corr)
    assert abs(measured[0]) < 0.005
    assert 0.02 < measured[1] < measured[2]  # theory 0.034 and 0.19


def test_gain_modulated_rates_expectation_and_coupling():
    rng = np.random.default_rng(12)
    z = rng.standard_normal(400_000)
    lam = sp.gain_modulated_rates(np.array([1.0, 3.0, 0.5]), z, np.array([0.0, 0.3, 1.0]))
    assert lam.shape == (3, z.size)
    np.testing.assert_allclose(lam[0], 1.0)
    np.testing.assert_allclose(lam.mean(axis=1), [1.0, 3.0, 0.5], rtol=0.01)
    np.testing.assert_allclose(np.std(np.log(lam[1:]), axis=1), [0.3, 1.0], rtol=0.01)
    rate2d = np.tile([[2.0], [4.0]], (1, 5))
    np.testing.assert_allclose(sp.gain_modulated_rates(rate2d, np.zeros(5), 0.4),
                               rate2d * np.exp(-0.08))


# --------------------------------------------------------------------------------------------
# dichotomised Gaussian
# --------------------------------------------------------------------------------------------


def test_bivariate_normal_cdf_matches_scipy():
    pts = [(0.03, 0.2, 0.4), (0.5, 0.5, 0.3), (0.5, 0.1, -0.5), (0.01, 0.05, 0.9),
           (0.7, 0.4, -0.2), (0.2, 0.5, 0.99), (0.02, 0.02, -0.3)]
    for p1, p2, lam in pts:
        h = [ndtri(p1), ndtri(p2)]
        ref = stats.multivariate_normal(mean=[0, 0], cov=[[1, lam], [lam, 1]]).cdf(h)
        assert abs(sp._bvn_cdf(h[0], h[1], lam) - ref) < 1e-9
    # closed form at p = 1/2: 1/4 + arcsin(rho) / (2 pi)
    assert abs(sp._bvn_cdf(0.0, 0.0, 0.3) - (0.25 + np.arcsin(0.3) / (2 * np.pi))) < 1e-15


def test_binary_correlation_formula_matches_monte_carlo():
    rng = np.random.default_rng(13)
    n = 2_000_000
    for p1, p2, lam in [(0.03, 0.2, 0.4), (0.05, 0.05, -0.3), (0.5, 0.1, 0.7)]:
        x = rng.standard_normal(n)
        y = lam * x + np.sqrt(1 - lam * lam) * rng.standard_normal(n)
        b1, b2 = x > -ndtri(p1), y > -ndtri(p2)
        mc = np.corrcoef(b1, b2)[0, 1]
        assert abs(mc - sp.dg_binary_correlation(p1, p2, lam)) < 4 / np.sqrt(n) * 1.5


def test_dg_scalar_target():
    rng = np.random.default_rng(14)
    n, nf, fr, target = 20, 300_000, 30.0, 0.1
    p = rng.uniform(0.01, 0.05, n)
    thr, lat = sp.fit_dichotomised_gaussian(p, target)
    iu = np.triu_indices(n, 1)
    np.testing.assert_allclose(sp.dg_binary_correlation(p[iu[0]], p[iu[1]], lat[iu]), target,
                               atol=1e-9)
    np.testing.assert_allclose(thr, -ndtri(p))
    times, offsets = sp.dichotomised_gaussian_trains(p, lat, thr, nf, fr, rng)
    _check_ragged(times, offsets, n, nf / fr)
    x = _binary(times, offsets, nf, fr)
    ph = x.mean(axis=1)
    assert np.all(np.abs(ph - p) < 4 * np.sqrt(p * (1 - p) / nf))
    c = np.corrcoef(x)[iu]
    assert np.all(np.abs(c - target) < 0.02)
    assert abs(c.mean() - target) < 0.004


def test_dg_matrix_target():
    rng = np.random.default_rng(15)
    n, nf, fr = 16, 300_000, 24.0
    p = rng.uniform(0.01, 0.05, n)
    t = np.full((n, n), 0.02)
    t[:8, :8] = 0.15
    t[8:, 8:] = 0.08
    np.fill_diagonal(t, 1.0)
    thr, lat = sp.fit_dichotomised_gaussian(p, t)
    times, offsets = sp.dichotomised_gaussian_trains(p, lat, thr, nf, fr, rng)
    x = _binary(times, offsets, nf, fr)
    iu = np.triu_indices(n, 1)
    err = np.corrcoef(x)[iu] - t[iu]
    assert np.all(np.abs(err) < 0.02)
    assert np.all(np.abs(x.mean(axis=1) - p) < 4 * np.sqrt(p * (1 - p) / nf))


def test_dg_invalid_targets_raise():
    p = np.array([0.01, 0.05, 0.03])
    good = np.full((3, 3), 0.05)
    np.fill_diagonal(good, 1.0)
    sp.fit_dichotomised_gaussian(p, good)
    asym = good.copy()
    asym[0, 1] = 0.06
    with pytest.raises(ValueError, match="symmetric"):
        sp.fit_dichotomised_gaussian(p, asym)
    diag = good.copy()
    diag[1, 1] = 0.9
    with pytest.raises(ValueError, match="diagonal"):
        sp.fit_dichotomised_gaussian(p, diag)
    big = good.copy()
    big[0, 2] = big[2, 0] = 1.5
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        sp.fit_dichotomised_gaussian(p, big)
    with pytest.raises(ValueError, match="cannot be reached"):  # max for (0.01, 0.05): 0.44
        sp.fit_dichotomised_gaussian(p, 0.9)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        sp.fit_dichotomised_gaussian(p, np.eye(2))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        sp.fit_dichotomised_gaussian([0.0, 0.5], 0.1)
    # latent 0.81 / 0.81 / -0.81 is not a correlation matrix
    half = np.full(3, 0.5)
    bad = np.array([[1, 0.6, 0.6], [0.6, 1, -0.6], [0.6, -0.6, 1]])
    with pytest.raises(ValueError, match="positive semi-definite"):
        sp.fit_dichotomised_gaussian(half, bad)
    _, lat = sp.fit_dichotomised_gaussian(half, bad, project=True)
    assert np.linalg.eigvalsh(lat)[0] > -1e-9
    np.testing.assert_allclose(np.diag(lat), 1.0)
    np.testing.assert_allclose(lat, lat.T)
    with pytest.raises(ValueError, match="positive semi-definite"):
        sp.dichotomised_gaussian_trains(half, np.array([[1, .9, .9], [.9, 1, -.9], [.9, -.9, 1]]),
                                        None, 10, 30.0, np.random.default_rng(0))


def test_dg_fit_is_fast_for_hundreds_of_cells():
    import time

    p = np.random.default_rng(16).uniform(0.02, 0.04, 300)
    t0 = time.perf_counter()
    _, lat = sp.fit_dichotomised_gaussian(p, 0.1)
    assert time.perf_counter() - t0 < 5.0  # ~0.1 s here
    iu = np.triu_indices(300, 1)
    np.testing.assert_allclose(sp.dg_binary_correlation(p[iu[0]], p[iu[1]], lat[iu]), 0.1,
                               atol=1e-9)


def test_dg_large_heterogeneous_population_needs_projection():
    # one target for all pairs with p spread over 0.005-0.08: the pairwise latent correlations
    # form no valid matrix at 300 cells (smallest eigenvalue ~ -1.06)
    p = np.random.default_rng(16).uniform(0.005, 0.08, 300)
    with pytest.raises(ValueError, match="project=True"):
        sp.fit_dichotomised_gaussian(p, 0.05)
    _, lat = sp.fit_dichotomised_gaussian(p, 0.05, project=True)
    assert np.linalg.eigvalsh(lat)[0] > -1e-9
    iu = np.triu_indices(300, 1)
    c = sp.dg_binary_correlation(p[iu[0]], p[iu[1]], lat[iu])
    assert abs(c.mean() - 0.05) < 0.001 and np.abs(c - 0.05).max() < 0.015  # measured 0.011


def test_one_factor_fit_accuracy():
    rng = np.random.default_rng(17)
    p = np.exp(rng.uniform(np.log(0.01), np.log(0.05), 1000))
    rho = sp.fit_dg_one_factor(p, 0.1)
    a = np.sqrt(rho)
    i, j = np.triu_indices(1000, 1)
    c = sp.dg_binary_correlation(p[i], p[j], a[i] * a[j])
    assert np.abs(c - 0.1).max() < 0.008  # measured 0.006
    assert abs(c.mean() - 0.1) < 0.001
    # wide range of p: the fit weights pairs by the slope of binary vs latent correlation
    p = np.exp(rng.uniform(np.log(0.001), np.log(0.07), 1000))
    a = np.sqrt(sp.fit_dg_one_factor(p, 0.05))
    c = sp.dg_binary_correlation(p[i], p[j], a[i] * a[j])
    assert np.abs(c - 0.05).max() < 0.02  # measured 0.017
    assert abs(c.mean() - 0.05) < 0.0005  # measured 0.0003 (unweighted fit: 0.0008)
    # homogeneous p: exact
    rho_h = sp.fit_dg_one_factor(np.full(10, 0.02), 0.1)
    _, lat = sp.fit_dichotomised_gaussian(np.full(10, 0.02), 0.1)
    np.testing.assert_allclose(rho_h, lat[0, 1], rtol=1e-9)
    assert np.all(sp.fit_dg_one_factor(p, 0.0) == 0)
    with pytest.raises(ValueError):
        sp.fit_dg_one_factor(p, 0.9)


def test_one_factor_sampling_matches_targets_and_shares_latent():
    rng = np.random.default_rng(18)
    n, nf, fr = 40, 300_000, 30.0
    p = rng.uniform(0.01, 0.05, n)
    rho = sp.fit_dg_one_factor(p, 0.1)
    z = rng.standard_normal(nf)  # one shared factor for both blocks
    ta, oa = sp.dg_one_factor(p[:20], rho[:20], nf, fr, rng, shared=z)
    tb, ob = sp.dg_one_factor(p[20:], rho[20:], nf, fr, rng, shared=z)
    _check_ragged(ta, oa, 20, nf / fr)
    x = np.vstack([_binary(ta, oa, nf, fr), _binary(tb, ob, nf, fr)])
    assert np.all(np.abs(x.mean(axis=1) - p) < 4 * np.sqrt(p * (1 - p) / nf))
    a = np.sqrt(rho)
    iu = np.triu_indices(n, 1)
    c = np.corrcoef(x)[iu]
    expect = sp.dg_binary_correlation(p[iu[0]], p[iu[1]], a[iu[0]] * a[iu[1]])
    assert np.all(np.abs(c - expect) < 0.02)
    assert np.all(np.abs(c - 0.1) < 0.025)
    cross = np.corrcoef(x)[:20, 20:]  # pairs across the two blocks
    assert abs(cross.mean() - 0.1) < 0.01
    # without a shared factor, the blocks are independent
    tc, oc = sp.dg_one_factor(p[20:], rho[20:], nf, fr, rng)
    y = _binary(tc, oc, nf, fr)
    assert abs(np.corrcoef(x[:20], y)[:20, 20:].mean()) < 0.005


def test_one_factor_zero_and_strong_correlation():
    rng = np.random.default_rng(19)
    nf, fr = 200_000, 30.0
    p = np.full(6, 0.03)
    t, o = sp.dg_one_factor(p, 0.0, nf, fr, rng)
    x = _binary(t, o, nf, fr)
    assert np.abs(np.corrcoef(x)[np.triu_indices(6, 1)]).max() < 0.015
    t, o = sp.dg_one_factor(p, 0.8, nf, fr, rng)  # candidates are thinned hard here
    x = _binary(t, o, nf, fr)
    assert np.all(np.abs(x.mean(axis=1) - 0.03) < 4 * np.sqrt(0.03 * 0.97 / nf))
    c = np.corrcoef(x)[np.triu_indices(6, 1)]
    assert np.all(np.abs(c - sp.dg_binary_correlation(0.03, 0.03, 0.8)) < 0.02)


def test_edge_sizes():
    rng = np.random.default_rng(20)
    t, o = sp.poisson_trains(np.zeros(0), 5.0, rng, 0.002)
    assert t.size == 0 and o.tolist() == [0]
    t, o = sp.inhomogeneous_trains(np.zeros((3, 10)), 0.1, rng, 0.002)
    assert t.size == 0 and o.tolist() == [0, 0, 0, 0]
    t, o = sp.dg_one_factor(np.full(4, 0.3), 0.2, 5, 10.0, rng)
    _check_ragged(t, o, 4, 0.5)
    _binary(t, o, 5, 10.0)
    t, o = sp.burst_trains(np.array([0.0, 1.0]), 2.0, rng, 1.0, 1.0)
    _check_ragged(t, o, 2, 2.0)
    assert o[1] == 0
    with pytest.raises(ValueError, match="shared"):
        sp.dg_one_factor(np.full(4, 0.3), 0.2, 5, 10.0, rng, shared=np.zeros(4))
