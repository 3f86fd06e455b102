"""Per-cell scores and population statistics: exact binning, CASCADE measures, van Rossum
against elephant, optimal spike matching, KL/Wasserstein comparisons."""

import warnings

import numpy as np
import pandas as pd
import pytest

from cabench import CabenchError
from cabench.benchmark import metrics as m
from cabench.traceset import frame_edges


def _poisson(rng, rate, duration):
    return np.sort(rng.uniform(0, duration, rng.poisson(rate * duration)))


# --- van Rossum ---------------------------------------------------------------------------------
def _elephant_matrix(trains, tau, t_stop):
    pytest.importorskip("elephant")
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    from elephant.spike_train_dissimilarity import van_rossum_distance

    sts = [neo.SpikeTrain(np.asarray(t) * pq.s, t_stop=t_stop * pq.s) for t in trains]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its clipping of tiny negatives
        return van_rossum_distance(sts, tau * pq.s)


def _random_trains(seed=0, duration=40.0):
    rng = np.random.default_rng(seed)
    trains = [np.sort(rng.uniform(0, duration, n)) for n in (0, 1, 2, 7, 60, 400, 0)]
    # coincident times: a train sharing half its spikes with another, and duplicate times
    shared = np.concatenate([trains[4][:30], rng.uniform(0, duration, 25)])
    trains.append(np.sort(shared))
    trains.append(np.sort(np.concatenate([trains[3], trains[3][:2]])))
    return trains


@pytest.mark.parametrize("tau", [0.003, 0.1, 1.0, 25.0])
def test_van_rossum_matrix_matches_elephant(tau):
    trains = _random_trains()
    ref = _elephant_matrix(trains, tau, 40.0)
    got = m.van_rossum_matrix(trains, tau)
    assert got.shape == ref.shape
    off = ~np.eye(len(trains), dtype=bool)
    np.testing.assert_allclose(got[off], ref[off], rtol=1e-9, atol=1e-12)
    # elephant's own diagonal is the square root of rounding errors, ours is exactly 0
    assert np.all(np.diag(got) == 0) and np.all(np.diag(ref) < 1e-5)
    for i, j in [(4, 7), (3, 8), (0, 5), (2, 6)]:  # the pair function too
        assert m.van_rossum(trains[i], trains[j], tau) == pytest.approx(ref[i, j], rel=1e-9)
    assert got[0, 6] == 0.0 and got[0, 1] == pytest.approx(1.0)  # empty trains


@pytest.mark.parametrize("n1,n2,tau", [(0, 0, 1.0), (0, 5, 0.2), (1, 1, 0.05), (30, 500, 0.5),
                                       (600, 600, 1.0), (300, 250, 0.01)])
def test_van_rossum_pair_matches_elephant(n1, n2, tau):
    rng = np.random.default_rng(n1 * 1000 + n2)
    t1, t2 = rng.uniform(0, 100, n1), rng.uniform(0, 100, n2)  # unsorted on purpose
    ref = _elephant_matrix([np.sort(t1), np.sort(t2)], tau, 100.0)[0, 1]
    got = m.van_rossum(t1, t2, tau)
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_van_rossum_closed_forms():
    assert m.van_rossum([2.0], [], 0.5) == pytest.approx(1.0)
    assert m.van_rossum([], [], 0.5) == 0.0
    assert m.van_rossum([1.0, 1e3], [], 0.5) == pytest.approx(np.sqrt(2.0))
    dt, tau = 0.03, 0.1
    assert m.van_rossum([1.0], [1.0 + dt], tau) ** 2 == pytest.approx(2 * (1 - np.exp(-dt / tau)))
    assert m.van_rossum([1.0, 1.0], [1.0], tau) == pytest.approx(1.0)  # duplicate spike
    assert m.van_rossum([1.0, 2.0, 3.0], [5.0], np.inf) == 2.0
    # far-apart spikes (many sweep blocks) and large absolute times stay exact
    assert m.van_rossum([1e6], [1e6 + 1e3], 0.01) == pytest.approx(np.sqrt(2.0))
    with pytest.raises(CabenchError):
        m.van_rossum([1.0], [2.0], 0.0)


def test_van_rossum_identical_trains_are_zero():
    t = np.random.default_rng(3).uniform(0, 60, 300)
    assert m.van_rossum(t, t[::-1].copy(), 1.0) == 0.0  # exact for a pair
    assert m.van_rossum_matrix([t, t, t[:-1]], 1.0)[0, 1] < 1e-5  # sqrt of rounding in a matrix


def test_van_rossum_weights_equal_repeated_spikes():
    t = np.array([0.1, 0.5, 0.52, 3.0])
    s = np.array([0.2, 0.5, 2.0])
    repeated = np.repeat(s, [1, 3, 2])
    assert m.van_rossum(t, s, 0.3, weights2=[1, 3, 2]) == pytest.approx(
        m.van_rossum(t, repeated, 0.3), rel=1e-12)


def test_van_rossum_matrix_equals_pairwise_calls():
    rng = np.random.default_rng(5)
    trains = [_poisson(rng, r, 30.0) for r in (0.0, 0.5, 2.0, 5.0, 11.0, 20.0)] + [[]]
    for tau in (0.02, 1.0):
        mat = m.van_rossum_matrix(trains, tau)
        pair = np.array([[m.van_rossum(a, b, tau) for b in trains] for a in trains])
        np.testing.assert_allclose(mat, pair, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(mat, mat.T)
        assert np.all(np.diag(mat) == 0)


def test_van_rossum_matrix_many_trains_parallel_chunks():
    rng = np.random.default_rng(8)
    trains = [_poisson(rng, 1.0, 10.0) for _ in range(600)]  # split into chunks of trains
    mat = m.van_rossum_matrix(trains, 0.5)
    for i, j in [(0, 599), (255, 256), (10, 500), (598, 2), (300, 301)]:
        assert mat[i, j] == pytest.approx(m.van_rossum(trains[i], trains[j], 0.5), rel=1e-10)
    # the parallel kernel over uneven chunks equals the serial one, whatever the thread count
    lab = np.repeat(np.arange(7), 3)[np.argsort(np.arange(21) % 5, kind="stable")]
    blk = np.zeros(21, np.int64)
    ep = np.exp(np.linspace(0, 2, 21))
    serial, parallel = np.zeros((7, 7)), np.zeros((7, 7))
    m._vr_sweep(lab, np.ones(21), blk, ep, 1 / ep, 30.0, 0, 7, serial)
    m._vr_sweep_parallel(lab, np.ones(21), blk, ep, 1 / ep, 30.0, 3, parallel)
    np.testing.assert_array_equal(serial, parallel)
    assert serial.any()


def test_van_rossum_normalised_is_stable_across_rates():
    # same jitter (5 ms) and miss fraction (20 %) at rates 0.5-10 Hz over the same duration
    rng = np.random.default_rng(11)
    tau, duration = 0.05, 400.0
    jit, miss, raw = [], [], []
    for rate in (0.5, 2.0, 10.0):
        t = _poisson(rng, rate, duration)
        jittered = t + rng.normal(0, 0.005, t.size)
        kept = t[rng.random(t.size) > 0.2]
        jit.append(m.van_rossum_normalised(t, jittered, tau))
        miss.append(m.van_rossum_normalised(t, kept, tau))
        raw.append(m.van_rossum(t, jittered, tau) ** 2)
    assert max(jit) / min(jit) < 1.15
    assert np.allclose(miss, 0.2, atol=0.04)  # about the fraction of missed spikes
    assert raw[-1] / raw[0] > 10  # the raw distance grows with the rate
    assert np.isnan(m.van_rossum_normalised([], [1.0], tau))


# --- corr_25hz ----------------------------------------------------------------------------------
def test_bin_estimate_exact_straddling_frames():
    # frames 30 ms long (edges 0, .03, .06, .09, .12), bins 40 ms: frames straddle bin edges
    ft = np.array([0.015, 0.045, 0.075, 0.105])
    est = np.array([1.0, 2.0, 0.0, 3.0])
    edges, values, valid = m.bin_estimate(est, ft, 0.04)
    np.testing.assert_allclose(edges, [0.0, 0.04, 0.08, 0.12])
    np.testing.assert_allclose(values, [1 + 2 / 3, 4 / 3, 3.0])
    assert valid.all()
    truth = [0.01, 0.05, 0.09, 0.1]
    np.testing.assert_array_equal(m.bin_spikes(truth, edges), [1, 1, 2])
    expected = np.corrcoef([1 + 2 / 3, 4 / 3, 3.0], [1, 1, 2])[0, 1]
    assert m.corr_25hz(est, ft, truth) == pytest.approx(expected, rel=1e-12)


def test_bin_estimate_keeps_only_complete_bins_and_total_mass():
    rng = np.random.default_rng(2)
    ft = 0.3 + np.arange(1000) / 29.7  # not a divisor of 25 Hz
    est = rng.random(1000)
    edges, values, valid = m.bin_estimate(est, ft, 0.04)
    span = 1000 / 29.7
    assert len(values) == int(span / 0.04) and edges[-1] <= ft[-1] + 0.5 / 29.7 + 1e-12
    covered = np.interp(edges[-1], frame_edges(ft), np.r_[0, np.cumsum(est)])
    assert values.sum() == pytest.approx(covered, rel=1e-12)


def test_corr_25hz_perfect_estimate_is_one():
    rng = np.random.default_rng(4)
    fr, n = 100.0, 3000
    ft = np.arange(n) / fr
    truth = rng.uniform(ft[0], ft[-1], 200)
    est = np.bincount(np.round(truth * fr).astype(int), minlength=n).astype(float)
    assert m.corr_25hz(est, ft, truth) == pytest.approx(1.0, abs=1e-12)
    # assigning whole 30 Hz frames to 40 ms bins would not reach 1 on a shifted grid
    assert m.corr_25hz(np.roll(est, 3), ft, truth) < 0.5


def test_corr_25hz_masks_bins_touching_nan_frames():
    rng = np.random.default_rng(6)
    fr, n = 100.0, 2000
    ft = np.arange(n) / fr
    truth = rng.uniform(ft[0], ft[-1], 150)
    est = np.bincount(np.round(truth * fr).astype(int), minlength=n).astype(float)
    est[:10] = np.nan  # edge padding: bins 0-2 (4 frames each) touch NaN frames
    est[1001] = np.nan  # one frame inside bin 250
    edges, _, valid = m.bin_estimate(est, ft, 0.04)
    assert not valid[[0, 1, 2, 250]].any() and valid[[3, 249, 251]].all()
    assert valid.sum() == len(valid) - 4
    assert m.corr_25hz(est, ft, truth) == pytest.approx(1.0, abs=1e-12)
    extra = np.r_[truth, [0.001, 0.002, 0.05, 10.005]]  # true spikes only in masked bins
    assert m.corr_25hz(est, ft, extra) == pytest.approx(1.0, abs=1e-12)
    # a mask that straddles bins: frame of 30 ms covering two 40 ms bins
    _, _, v = m.bin_estimate([1.0, np.nan, 2.0, 4.0], [0.015, 0.045, 0.075, 0.105], 0.04)
    np.testing.assert_array_equal(v, [False, False, True])


# --- smoothed measures --------------------------------------------------------------------------
def _truth_on_frames(seed=0, fr=30.0, n=1500, n_spikes=80):
    rng = np.random.default_rng(seed)
    ft = np.arange(n) / fr
    k = rng.integers(20, n - 20, n_spikes)
    counts = np.bincount(k, minlength=n).astype(float)
    return ft, ft[k], counts


def test_smooth_events_keeps_mass_per_spike():
    ft = np.arange(600) / 30.0
    sm = m.smooth_events([5.0, 10.013], ft, 0.05)
    assert sm.sum() == pytest.approx(2.0, rel=1e-12)
    assert sm.argmax() == 150
    half = m.smooth_events([ft[0]], ft, 0.05).sum()  # half the mass falls before the recording
    assert half == pytest.approx(0.5 + 0.5 / 30.0 / (0.05 * np.sqrt(2 * np.pi)), rel=0.02)


def test_error_and_bias_known_values():
    ft, spikes, counts = _truth_on_frames()
    assert m.bias(2 * counts, ft, spikes) == pytest.approx(1.0, abs=1e-9)
    assert m.error(2 * counts, ft, spikes) == pytest.approx(1.0, abs=1e-9)
    assert m.corr_smoothed(2 * counts, ft, spikes) == pytest.approx(1.0, abs=1e-12)
    assert m.bias(counts, ft, spikes) == pytest.approx(0.0, abs=1e-9)
    assert m.error(counts, ft, spikes) == pytest.approx(0.0, abs=1e-9)
    assert m.bias(0.5 * counts, ft, spikes) == pytest.approx(-0.5, abs=1e-9)
    assert m.bias(np.zeros_like(counts), ft, spikes) == pytest.approx(-1.0)
    # a spread-out estimate with the right total: no bias, some error
    flat = np.full(counts.size, counts.sum() / counts.size)
    assert abs(m.bias(flat, ft, spikes)) < 0.01 and m.error(flat, ft, spikes) > 0.5


def test_smoothed_measures_mask_nan_frames_and_neighbours():
    ft, spikes, counts = _truth_on_frames(seed=1)
    est = counts.copy()
    hit = np.flatnonzero(counts)[[5, 40]]  # frames with true spikes
    est[:32] = np.nan
    est[hit[0] - 2 : hit[0] + 3] = np.nan
    est[hit[1]] = np.nan
    # true spikes inside masked frames would otherwise be missed by the estimate; what is left
    # is their Gaussian mass beyond the 3-sigma margin
    assert m.bias(est, ft, spikes) == pytest.approx(0.0, abs=1e-3)
    assert m.corr_smoothed(est, ft, spikes) == pytest.approx(1.0, abs=1e-4)
    assert m.bias(np.where(np.isnan(est), 0, est), ft, spikes) < -0.01


# --- rate error, F1, score_cell -----------------------------------------------------------------
def test_rate_error():
    ft, spikes, counts = _truth_on_frames(seed=2)
    assert m.rate_error(1.25 * counts, ft, spikes) == pytest.approx(0.25)
    est = counts.copy()
    est[:200] = np.nan  # the spikes there are not counted either
    assert m.rate_error(est, ft, spikes) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(m.rate_error(np.zeros(10), np.arange(10) / 30.0, []))


def test_f1_known_matches():
    r = m.f1([1.0, 2.0, 3.0], [1.01, 1.95, 2.04, 5.0], 0.05)
    assert (r.n_matched, r.n_true, r.n_inferred) == (2, 3, 4)
    assert r.precision == pytest.approx(0.5) and r.recall == pytest.approx(2 / 3)
    assert r.f1 == pytest.approx(4 / 7)
    # nearest-pair-first matching finds 1 pair here; the optimal matching finds 2
    assert m.f1([0.0, 0.08], [0.04, 0.12], 0.05).n_matched == 2
    assert m.f1([1.0, 1.0], [1.0], 0.0).n_matched == 1  # one to one
    empty = m.f1([], [], 0.05)
    assert np.isnan(empty.f1) and m.f1([1.0], [], 0.05).f1 == 0.0


def test_f1_matching_is_maximum():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    rng = np.random.default_rng(9)
    for _ in range(200):
        t = rng.uniform(0, 1, rng.integers(0, 12))
        s = rng.uniform(0, 1, rng.integers(0, 12))
        tol = rng.uniform(0.01, 0.2)
        adj = np.abs(t[:, None] - s[None, :]) <= tol
        best = 0
        if t.size and s.size:
            best = int((maximum_bipartite_matching(csr_matrix(adj), perm_type="column") >= 0).sum())
        assert m.f1(t, s, tol).n_matched == best


def test_score_cell_perfect_and_params():
    ft, spikes, counts = _truth_on_frames(seed=3, fr=100.0, n=4000, n_spikes=120)
    s = m.score_cell(counts, None, spikes, frame_rate=100.0, inferred_spike_times=spikes)
    assert set(s) == {"corr_25hz", "corr_smoothed", "error", "bias", "rate_error", "van_rossum",
                      "n_true", "n_inferred", "van_rossum_spikes", "precision", "recall", "f1"}
    assert s["corr_25hz"] == pytest.approx(1.0) and s["corr_smoothed"] == pytest.approx(1.0)
    assert s["error"] == pytest.approx(0.0, abs=1e-9) and s["rate_error"] == pytest.approx(0.0)
    assert s["van_rossum"] == pytest.approx(0.0, abs=1e-9) and s["f1"] == 1.0
    assert s["n_true"] == 120
    s2 = m.score_cell(counts, ft, spikes, bin_s=0.1, sigma_s=0.2)
    assert np.isnan(s2["f1"]) and all(isinstance(v, float) for v in s2.values())
    with pytest.raises(CabenchError, match="valid: bin_s"):
        m.score_cell(counts, ft, spikes, sigma=0.1)
    with pytest.raises(CabenchError):
        m.score_cell(counts, ft[:-1], spikes)


# --- population statistics ----------------------------------------------------------------------
def test_firing_rates_of_poisson_trains_and_arrays_agree():
    rng = np.random.default_rng(12)
    rates, duration, fr = np.array([0.2, 1.0, 3.0, 8.0]), 500.0, 20.0
    trains = [_poisson(rng, r, duration) for r in rates]
    est = m.firing_rates(trains, duration=duration)
    assert np.all(np.abs(est - rates) < 4 * np.sqrt(rates / duration))
    counts = np.zeros((4, int(duration * fr)))
    for i, t in enumerate(trains):
        np.add.at(counts[i], np.floor(t * fr).astype(int), 1)
    np.testing.assert_allclose(m.firing_rates(counts, fr), est)
    # the same spikes in either form give the same pairwise statistics
    frame_trains = [np.repeat(np.arange(c.size), c.astype(int)) / fr for c in counts]
    np.testing.assert_allclose(m.pairwise_correlations(counts, fr),
                               m.pairwise_correlations(frame_trains, duration=duration))
    np.testing.assert_allclose(m.pairwise_van_rossum(counts, fr),
                               m.pairwise_van_rossum(frame_trains, duration=duration), rtol=1e-10)
    with pytest.raises(CabenchError):
        m.firing_rates(trains)


def test_pairwise_correlations_recover_shared_component():
    rng = np.random.default_rng(13)
    duration, n = 1000.0, 6
    shared = _poisson(rng, 2.0, duration)  # copied into every neuron
    trains = [np.sort(np.r_[shared, _poisson(rng, 2.0, duration)]) for _ in range(n)]
    r = m.pairwise_correlations(trains, duration=duration, bin_s=0.5)
    assert r.shape == (n * (n - 1) // 2,)
    assert np.mean(r) == pytest.approx(0.5, abs=0.05)  # shared / (shared + private) rate
    indep = [_poisson(rng, 4.0, duration) for _ in range(n)]
    assert np.abs(m.pairwise_correlations(indep, duration=duration)).max() < 0.12
    silent = m.pairwise_correlations([shared, []], duration=duration)
    assert np.isnan(silent).all()


def test_pairwise_van_rossum_is_upper_triangle_of_matrix():
    rng = np.random.default_rng(14)
    trains = [_poisson(rng, 1.0, 60.0) for _ in range(5)]
    vr = m.pairwise_van_rossum(trains, duration=60.0)
    mat = m.van_rossum_matrix(trains, 1.0)
    np.testing.assert_array_equal(vr, mat[np.triu_indices(5, 1)])


def test_kl_divergence_and_wasserstein():
    rng = np.random.default_rng(15)
    a = rng.normal(0, 1, 2000)
    assert m.kl_divergence(a, a.copy()) == 0.0
    assert m.wasserstein(a, a.copy()) == 0.0
    small = m.kl_divergence(a, a + 0.2)
    large = m.kl_divergence(a, a + 1.0)
    assert 0 < small < large
    assert m.wasserstein(a, a + 1.0) == pytest.approx(1.0)
    # disjoint supports: bounded by the epsilon
    assert m.kl_divergence([0.0] * 10, [1.0] * 10) == pytest.approx(np.log(1 / 1e-6), rel=0.01)
    assert np.isnan(m.kl_divergence([], [1.0]))


def test_compare_populations_table():
    rng = np.random.default_rng(16)
    fr = 24.0
    real = (rng.random((12, 4800)) < rng.uniform(0.005, 0.05, (12, 1))).astype(np.uint8)
    df = m.compare_populations(real, real.copy(), fr)
    assert isinstance(df, pd.DataFrame)
    assert list(df.index) == ["firing_rate", "correlation", "van_rossum"]
    assert list(df.columns) == ["kl", "wasserstein", "n_real", "n_generated"]
    assert (df["kl"] == 0).all() and (df["wasserstein"] == 0).all()
    assert df.loc["correlation", "n_real"] == 66 and df.loc["firing_rate", "n_generated"] == 12
    denser = (rng.random((10, 2400)) < 0.1).astype(np.uint8)  # other size and length
    df2 = m.compare_populations(real, denser, fr)
    assert (df2["kl"] > 0).all() and df2.loc["firing_rate", "wasserstein"] > 1.0
    assert df2.loc["van_rossum", "n_generated"] == 45
