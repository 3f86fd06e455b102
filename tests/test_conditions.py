"""Resampling to a frame rate and noise matching to a noise level, against known signals."""

from __future__ import annotations

import numpy as np
import pytest

from cabench.conditions import band_limit, match_noise, mean_frame_rate, resample
from cabench.errors import CabenchError
from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceSet, ragged


def _band_limited(t: np.ndarray) -> np.ndarray:
    """A slow signal (components <= 2 Hz) plus a linear trend, dF/F."""
    return (0.3 * np.sin(2 * np.pi * 0.7 * t) + 0.2 * np.cos(2 * np.pi * 1.9 * t + 0.4)
            + 0.01 * t)


def _recording(rate: float, seconds: float, jitter: float = 0.0) -> TraceSet:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if jitter:
        t = t * (1 + jitter)  # the real rate is off the nominal one
    spikes, offsets = ragged([np.array([1.0, 2.5, 7.25])])
    return TraceSet(_band_limited(t)[None, None], rate, spikes, offsets, frame_times=t)


def test_resample_matches_the_signal_on_the_new_grid():
    for rate in (100.0, 11.6):
        ts = _recording(rate, 20.0)
        out = resample(ts, 30.0)
        n = ts.n_frames
        assert out.n_frames == round(n * 30.0 / rate)
        # frame k sits at t0 + k * N / (n * fr)
        k = np.arange(out.n_frames)
        np.testing.assert_allclose(out.times(), k * n / (out.n_frames * rate), rtol=1e-12)
        assert out.frame_rate == pytest.approx(30.0, rel=2e-3)
        truth = _band_limited(out.times())
        inner = slice(15, -15)  # away from the ends
        err = np.abs(out.traces[0, 0, inner] - truth[inner]).max()
        assert err < 5e-3, (rate, err)
        assert out.params["resampled_from_hz"] == pytest.approx(rate)
        np.testing.assert_array_equal(out.spikes(0, 0), ts.spikes(0, 0))


def test_resample_uses_the_real_mean_rate():
    # a "30 Hz" recording that really runs at 29.7 Hz for 10 min must not drift
    ts = _recording(30.0, 600.0, jitter=0.0101)
    assert mean_frame_rate(ts) == pytest.approx(30.0 / 1.0101, rel=1e-9)
    assert resample(ts, 30.0) is ts  # within 5 %: left alone
    out = resample(ts, 60.0)
    assert out.times()[-1] == pytest.approx(ts.times()[-1], abs=1 / 29.7)
    assert out.frame_rate == pytest.approx(60.0, rel=1e-4)  # on the recording's own clock
    assert out.n_frames == round(ts.n_frames * 60.0 / mean_frame_rate(ts))


def test_resample_keeps_nan_stretches():
    ts = _recording(50.0, 10.0)
    ts.traces[0, 0, 200:260] = np.nan  # 4.0 - 5.2 s
    out = resample(ts, 25.0)
    nan_times = out.times()[np.isnan(out.traces[0, 0])]
    assert nan_times.min() >= 3.98 and nan_times.max() <= 5.2
    assert np.isnan(out.traces[0, 0]).sum() == pytest.approx(30, abs=2)
    assert np.isfinite(out.traces[0, 0, :95]).all()


def test_resample_refuses_bad_rate():
    with pytest.raises(CabenchError, match="positive"):
        resample(_recording(30.0, 5.0), 0.0)


def _flat_noisy(nu_levels, rate=30.0, frames=20000, seed=0) -> TraceSet:
    rng = np.random.default_rng(seed)
    sigma = np.asarray(nu_levels) * np.sqrt(rate) / 95.4
    # half of each trace bright (dF/F 3), half dim (0): shot noise must differ between them
    base = np.zeros(frames)
    base[frames // 2:] = 3.0
    x = base + sigma[:, None] * rng.standard_normal((len(sigma), frames))
    return TraceSet(x[None].astype(np.float32), rate)


def test_band_limit_gives_white_noise_the_bandwidth_and_nu_of_a_resampled_recording():
    rng = np.random.default_rng(4)
    native, rate, n_native = 7.8, 30.0, 1560
    nu = 1.5  # white noise of nu 1.5 at 7.8 Hz, resampled up to 30 Hz (what the data are)
    noise = rng.normal(0, nu * np.sqrt(native) / 95.4, (40, n_native))
    up = resample(TraceSet(noise[None].astype(np.float32), native), rate)
    # the same nu at 30 Hz, band-limited to the native Nyquist frequency
    white = rng.normal(0, nu * np.sqrt(rate) / 95.4, up.traces.shape[1:])
    limited = band_limit(white, rate, native / 2)
    assert np.median(noise_level_nu(white, rate)) == pytest.approx(nu, rel=0.03)
    assert np.median(noise_level_nu(limited, rate)) == pytest.approx(
        np.median(noise_level_nu(up.traces, rate)), rel=0.03)
    assert np.median(noise_level_nu(limited, rate)) < 0.3 * nu
    freq = np.fft.rfftfreq(white.shape[1], 1 / rate)
    power = np.abs(np.fft.rfft(limited - limited.mean(1, keepdims=True))) ** 2
    assert power[:, freq > native / 2 + 0.05].sum() < 1e-3 * power.sum()
    # what was band-limited already stays as it is (away from the ends)
    again = band_limit(up.traces, rate, native / 2)
    np.testing.assert_allclose(again[..., 50:-50], up.traces[..., 50:-50], atol=1e-3 * nu)


def test_band_limit_keeps_nan_frames_and_refuses_bad_rates():
    t = np.arange(300) / 30.0
    y = _band_limited(t) + 0.05 * np.random.default_rng(0).standard_normal(300)
    y[100:110] = np.nan
    out = band_limit(y, 30.0, 5.0)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(y))
    slow = _band_limited(t)  # <= 2 Hz: passes a 5 Hz band limit up to the ends
    np.testing.assert_allclose(band_limit(slow, 30.0, 5.0)[20:-20], slow[20:-20], atol=0.01)
    np.testing.assert_array_equal(band_limit(y, 30.0, 15.0), y.astype(np.float32))
    for rate, cut in ((0.0, 5.0), (30.0, -1.0), (30.0, np.nan)):
        with pytest.raises(CabenchError, match="band_limit"):
            band_limit(y, rate, cut)


def test_match_noise_reaches_the_level_with_shot_noise_scaling():
    ts = _flat_noisy([0.5, 1.0, 1.5])
    out, report = match_noise(ts, 2.0, seed=3)
    np.testing.assert_allclose(noise_level_nu(out.traces, out.frame_rate), 2.0, rtol=0.011)
    np.testing.assert_allclose(report["nu_before"], [0.5, 1.0, 1.5], rtol=0.03)
    assert report["dropped"] == []
    added = (out.traces - ts.traces)[0].astype(np.float64)
    half = ts.n_frames // 2
    ratio = added[:, half:].std(axis=1) / added[:, :half].std(axis=1)
    np.testing.assert_allclose(ratio, np.sqrt(4.0 / 1.0), rtol=0.05)  # sqrt(dF/F + 1)
    assert out.params["noise_matched_nu"] == 2.0


def test_match_noise_drops_noisier_cells_and_is_deterministic():
    ts = _flat_noisy([1.0, 3.0, 1.9])
    out, report = match_noise(ts, 2.0, seed=7)
    assert report["dropped"] == [1] and out.n_cells == 2
    again, _ = match_noise(ts, 2.0, seed=7)
    np.testing.assert_array_equal(out.traces, again.traces)
    other, _ = match_noise(ts, 2.0, seed=8)
    assert not np.array_equal(out.traces, other.traces)
    none, report = match_noise(ts, 0.5, seed=7)
    assert none is None and report["dropped"] == [0, 1, 2]


def test_match_noise_keeps_spikes_of_kept_cells():
    ts = _flat_noisy([1.0, 3.0], frames=3000)
    spikes, offsets = ragged([np.array([1.0, 2.0]), np.array([5.0])])
    ts = TraceSet(ts.traces, ts.frame_rate, spikes, offsets, cell_names=["a", "b"])
    out, _ = match_noise(ts, 2.0, seed=0)
    assert out.cell_names == ["a"]
    np.testing.assert_array_equal(out.spikes(0, 0), [1.0, 2.0])
    with pytest.raises(CabenchError, match="positive"):
        match_noise(ts, float("nan"))
