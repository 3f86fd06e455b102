"""The simulation pipeline recovers the truth it was given, deterministically and in chunks."""

import tracemalloc

import numpy as np
import pytest

from cabench import CabenchError, TraceSet
from cabench.noise_level import noise_level_nu
from cabench.simulators import Simulation, simulate
from cabench.simulators.params import resolve
from cabench.simulators.presets import PRESETS


def test_requested_rates_and_noise_are_recovered():
    ts = simulate(cells=300, duration=120, rate=0.8, rate_sigma=0.0, noise=3.0, seed=2)
    assert ts.mean_rate_hz().mean() == pytest.approx(0.8, rel=0.05)
    np.testing.assert_allclose(noise_level_nu(ts.traces, ts.frame_rate), 3.0, rtol=0.1)
    assert ts.source == "simulated" and ts.params["seed"] == 2


def test_lognormal_rates_have_requested_median():
    ts = simulate(cells=400, duration=200, rate=0.3, rate_sigma=1.0, sigma=0.05, seed=3)
    assert np.median(ts.mean_rate_hz()) == pytest.approx(0.3, rel=0.15)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_hits_noise_level_within_10_percent(name):
    for nu in (1.0, 8.0):
        sim = Simulation(dict(cells=8, duration=60, noise=nu, seed=4), preset=name)
        ts = sim.run()
        np.testing.assert_allclose(noise_level_nu(ts.traces, ts.frame_rate), nu, rtol=0.1)


def test_decay_time_is_recovered_from_noisy_traces():
    decay = 0.6
    ts = simulate(cells=60, duration=300, rate=0.3, rate_sigma=0, decay=decay, rise=0.0,
                  hill=1.0, saturation=0.0, noise=2.0, seed=5)
    # spike-triggered average of the noisy trace: exponential decay after the peak frame
    fr = ts.frame_rate
    lags = np.arange(0, int(3 * decay * fr))
    sta = np.zeros(lags.size)
    n = 0
    for c in range(ts.n_cells):
        frames = np.ceil(ts.spikes(0, c) * fr).astype(int)
        frames = frames[frames + lags[-1] < ts.n_frames]
        sta += ts.traces[0, c][frames[:, None] + lags].sum(axis=0)
        n += frames.size
    sta /= n
    base = ts.traces.mean()  # sparse firing: the mean is close to the baseline response level
    slope = np.polyfit(lags[2:] / fr, np.log(np.clip(sta[2:] - base, 1e-6, None)), 1)[0]
    assert -1 / slope == pytest.approx(decay, rel=0.15)


def test_same_seed_gives_identical_file_and_other_seed_differs(tmp_path):
    args = dict(cells=20, duration=20, seed=11, noise=2.0)
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    Simulation(args).write(a)
    Simulation(args).write(b)
    Simulation({**args, "seed": 12}).write(c)
    assert a.read_bytes() == b.read_bytes()
    assert not np.array_equal(TraceSet.load(a).traces, TraceSet.load(c).traces)


def test_chunking_does_not_change_the_data(tmp_path):
    args = dict(cells=600, duration=10, trials=2, seed=9, drift_sd=0.02, neuropil=0.5,
                stimulus_depth=0.5, gain_sd=0.3, noise=2.0)
    Simulation(args).write(tmp_path / "small.h5", chunk_cells=256)
    Simulation(args).write(tmp_path / "big.h5", chunk_cells=1024)
    a, b = TraceSet.load(tmp_path / "small.h5"), TraceSet.load(tmp_path / "big.h5")
    np.testing.assert_array_equal(a.traces, b.traces)
    np.testing.assert_array_equal(a.spike_times, b.spike_times)


def test_streaming_memory_is_bounded_by_one_chunk(tmp_path):
    args = dict(cells=2048, duration=100, frame_rate=30.0, seed=1, noise=2.0)
    full_bytes = 2048 * 3000 * 4
    sim = Simulation(args)
    tracemalloc.start()
    sim.write(tmp_path / "big.h5", chunk_cells=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    chunk_bytes = 256 * 3000 * 4
    assert peak < 6 * chunk_bytes < full_bytes  # a few chunk-sized buffers, never the whole set
    assert TraceSet.load(tmp_path / "big.h5", cells=slice(2000, 2048)).n_cells == 48


def test_stimulus_is_repeated_across_trials():
    ts = simulate(cells=30, trials=20, duration=30, rate=2.0, rate_sigma=0,
                  stimulus_depth=1.0, stimulus_timescale=0.5, sigma=0.05, seed=6)
    counts = ts.binned_spikes()
    psth_a = counts[:10].sum(axis=0).reshape(30, -1, 15).sum(axis=2)  # 0.5 s bins
    psth_b = counts[10:].sum(axis=0).reshape(30, -1, 15).sum(axis=2)
    r = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(psth_a, psth_b, strict=True)])
    assert r > 0.5  # the same rate profile drives every trial


def test_dichotomised_gaussian_preset_matches_paper_and_target_correlation():
    ts = simulate(preset="calciumgan-paper", cells=60, duration=600, correlation=0.1,
                  rate=0.5, rate_sigma=0.3, seed=8)
    assert ts.frame_rate == 24.0 and ts.params["sigma"] == 0.3
    b = np.zeros((60, ts.n_frames))  # the DG's frame grid: frame k is [k/fr, (k+1)/fr)
    for c in range(60):
        b[c, np.floor(ts.spikes(0, c) * ts.frame_rate).astype(int)] = 1
    r = np.corrcoef(b)[np.triu_indices(60, 1)]
    assert np.nanmean(r) == pytest.approx(0.1, abs=0.03)
    # y = c + 0.3 N(0,1) with c_t = 0.95 c_{t-1} + s_t on the frame grid
    resid = ts.traces - ts.calcium
    assert resid.std() == pytest.approx(0.3, rel=0.02)


def test_latent_gain_correlates_cells_and_keeps_rates():
    base = dict(cells=80, duration=300, rate=1.0, rate_sigma=0, sigma=0.05, seed=12)
    ind, cor = simulate(**base), simulate(**base, gain_sd=0.8, gain_timescale=1.0)
    assert cor.mean_rate_hz().mean() == pytest.approx(1.0, rel=0.07)

    def mean_corr(ts):
        c = ts.binned_spikes()[0].reshape(80, -1, 15).sum(axis=2)  # 0.5 s bins
        return np.nanmean(np.corrcoef(c)[np.triu_indices(80, 1)])

    assert abs(mean_corr(ind)) < 0.02 and mean_corr(cor) > 0.05


@pytest.mark.parametrize("user, msg", [
    ({"frame_rate": 0}, "frame_rate must be >"),
    ({"frame_rate": -5}, "frame_rate must be >"),
    ({"rate": 40, "frame_rate": 30}, "not below the frame rate"),
    ({"spike_model": "poisson", "correlation": 0.2}, "dichotomised-gaussian"),
    ({"preset": "GCaMP99"}, "unknown preset"),
    ({"bogus": 1}, "unknown parameter"),
    ({"noise": 2, "sigma": 0.1}, "exactly one"),
    ({"cells": 2.5}, "expected int"),
    ({"rise": 1.0, "decay": 0.5}, "rise"),
])
def test_bad_parameters_are_refused(user, msg):
    with pytest.raises(CabenchError, match=msg):
        resolve(user)


def test_invalid_correlation_matrix_is_refused(tmp_path):
    m = np.full((3, 3), 0.9)
    m[0, 1] = m[1, 0] = -0.9  # not a valid correlation structure
    np.fill_diagonal(m, 1.0)
    np.save(tmp_path / "m.npy", m)
    with pytest.raises(CabenchError, match="correlation matrix"):
        Simulation(dict(cells=3, spike_model="dichotomised-gaussian", duration=10,
                        correlation_matrix=str(tmp_path / "m.npy")))


def test_unreachable_noise_level_warns_and_keeps_realistic_noise():
    with pytest.warns(UserWarning, match="change more per frame"):
        ts = simulate(cells=4, duration=30, rate=8.0, rate_sigma=0, amplitude=3.0, decay=0.1,
                      rise=0.0, noise=0.5, seed=1)
    resid = (ts.traces - ts.calcium).std()
    assert resid == pytest.approx(0.5 * np.sqrt(30.0) / 95.4, rel=0.05)  # white-noise SD
