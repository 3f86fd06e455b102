"""Conditional evaluation: traces made from known spikes with a known exponential kernel and
Gaussian noise. The real set's statistics recover the kernel and noise; a candidate with the
same kernel and noise (other noise seed) beats one with other decay, amplitude and noise on
every statistic; mismatched inputs are refused. Small arrays on the CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from cabench.errors import CabenchError
from cabench.generators.conditional_eval import (
    FIGURES,
    conditional_c2st,
    evaluate_conditional,
    event_amplitudes,
    isolated_spikes,
    load_recordings,
    quiet_psd,
    sta_shape,
)
from cabench.traceset import TraceSet, ragged

FR = 30.0  # Hz
AMP, TAU, SIGMA = 0.2, 0.5, 0.02  # dF/F per spike, decay (s), noise SD (dF/F) of "real"
SHAPE = (4, 4, 3600)  # trials, cells, frames: 2 min per trace


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spikes(seed: int, shape=SHAPE, rate_hz: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Poisson spikes (at most one per frame) at frame times, cell-major ragged (s)."""
    rng = np.random.default_rng(seed)
    trials, cells, frames = shape
    parts = [np.flatnonzero(rng.random(frames) < rate_hz / FR) / FR
             for _ in range(cells) for _ in range(trials)]
    return ragged(parts)


def _render(spikes, amp: float, tau: float, sigma: float, seed: int, shape=SHAPE) -> TraceSet:
    """amp * exp(-t / tau) per spike (peak in the spike's frame) plus N(0, sigma^2) noise."""
    times, off = spikes
    counts = TraceSet(np.zeros(shape, np.float32), FR, spike_times=times,
                      spike_offsets=off).binned_spikes()
    clean = amp * lfilter([1.0], [1.0, -math.exp(-1.0 / (tau * FR))], counts, axis=-1)
    noise = sigma * np.random.default_rng(seed).standard_normal(shape)
    return TraceSet((clean + noise).astype(np.float32), FR, spike_times=times, spike_offsets=off)


@pytest.fixture(scope="module")
def sets():
    sp = _spikes(0)
    return dict(real=_render(sp, AMP, TAU, SIGMA, 1), good=_render(sp, AMP, TAU, SIGMA, 2),
                bad=_render(sp, 1.5 * AMP, 2 * TAU, 2 * SIGMA, 3))


@pytest.fixture(scope="module")
def result(sets, tmp_path_factory):
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cond_eval") / "eval"
    df = evaluate_conditional(sets["real"], dict(good=sets["good"], bad=sets["bad"]), out,
                              seed=3, device="cpu", c2st_steps=200, c2st_window_s=4.0)
    torch.set_num_threads(n)
    return df, out


def _value(df: pd.DataFrame, cand: str, stat: str) -> float:
    row = df[(df.candidate == cand) & (df.statistic == stat)]
    assert len(row) == 1, (cand, stat)
    return float(row.value.iloc[0])


# --- building blocks against hand-made truth ------------------------------------------------
def test_isolated_spikes_by_hand():
    counts = np.zeros((1, 1, 40))
    counts[0, 0, [5, 20, 22, 33]] = 1  # 20 and 22 are 2 frames apart: neither is isolated
    counts[0, 0, 12] = 2  # a double spike in one frame is not a single spike
    # isolation 2 frames before, 2 after (1 Hz: ceil(2.0 * 1) = 2); window 2 before, 5 after
    ev = isolated_spikes(counts, 1.0, 2.0, 2.0, 2, 5)
    assert ev.tolist() == [[0, 0, 5], [0, 0, 33]]
    # 33 + 5 frames is still inside 40 frames, 36 + 5 would not be
    assert isolated_spikes(counts, 1.0, 2.0, 2.0, 2, 7).tolist() == [[0, 0, 5]]
    finite = np.ones_like(counts, bool)
    finite[0, 0, 8] = False  # NaN in 5's window drops it
    assert isolated_spikes(counts, 1.0, 2.0, 2.0, 2, 5, finite).tolist() == [[0, 0, 33]]


def test_sta_shape_and_amplitudes_of_exact_kernels():
    n_pre, t = 5, np.arange(60) / FR
    sta = np.concatenate([np.zeros(n_pre), 0.3 * np.exp(-t / 0.4)])
    shape = sta_shape(sta, FR, n_pre)
    assert shape["peak_dff"] == pytest.approx(0.3)
    assert shape["time_to_peak_s"] == 0.0
    assert shape["decay_s"] == pytest.approx(0.4, rel=0.01)
    scales = np.array([0.5, 1.0, 2.0])
    windows = scales[:, None] * sta[None]
    assert event_amplitudes(windows, sta, n_pre) == pytest.approx(0.3 * scales)


def test_quiet_psd_of_white_noise_is_flat_at_its_variance():
    rng = np.random.default_rng(5)
    x = 0.05 * rng.standard_normal((2, 3, 3000))
    counts = np.zeros_like(x)
    counts[..., 1500] = 1  # the 3 s after it (90 frames at 30 Hz) are not spike-free
    f, p, n = quiet_psd(x, counts, FR, 3.0, 60)
    # each row: frames 90..1499 (23 whole segments) and 1591..2999 (23 segments)
    assert n == 6 * 46
    inner = (f > 0) & (f < FR / 2)
    assert np.mean(p[inner]) == pytest.approx(2 * 0.05**2 / FR, rel=0.1)  # one-sided


def test_c2st_of_identical_pairs_is_exactly_chance_and_seeded():
    rng = np.random.default_rng(0)
    a = rng.random((40, 2, 64)).astype(np.float32)
    same = conditional_c2st(a, a.copy(), seed=1, steps=20)
    assert same["auc"] == 0.5 and same["n_test"] == 20  # equal inputs, equal logits: all ties
    b = a + 0.3 * rng.standard_normal(a.shape).astype(np.float32)
    r1, r2 = (conditional_c2st(a, b, seed=4, steps=20) for _ in range(2))
    assert r1 == r2


# --- the whole evaluation -------------------------------------------------------------------
def test_real_sta_recovers_the_known_kernel(result):
    df, _ = result
    assert _value(df, "real", "n_events") > 100
    assert _value(df, "real", "sta_peak_dff") == pytest.approx(AMP, rel=0.05)
    assert _value(df, "real", "sta_time_to_peak_s") == 0.0
    assert _value(df, "real", "sta_decay_s") == pytest.approx(TAU, rel=0.1)
    assert _value(df, "real", "amplitude_mean_dff") == pytest.approx(AMP, rel=0.05)
    assert _value(df, "bad", "sta_decay_s") == pytest.approx(2 * TAU, rel=0.1)


def test_noise_level_and_noise_sd_recovered(result):
    df, _ = result
    nu_true = 95.4 * SIGMA / math.sqrt(FR)  # % Hz^-1/2 of white noise of SD sigma
    assert _value(df, "real", "nu_median") == pytest.approx(nu_true, rel=0.1)
    assert _value(df, "bad", "nu_median") == pytest.approx(2 * nu_true, rel=0.1)
    assert _value(df, "real", "noise_sd_dff") == pytest.approx(SIGMA, rel=0.1)


def test_good_candidate_closer_than_bad_on_every_statistic(result):
    df, _ = result
    for stat in ("sta_rmse_dff", "amplitude_wasserstein_dff", "amplitude_ks", "psd_log_rmse",
                 "nu_wasserstein", "nu_rel_error", "c2st_auc"):
        assert _value(df, "good", stat) < _value(df, "bad", stat), stat
    assert _value(df, "good", "sta_correlation") > _value(df, "bad", "sta_correlation")
    for stat in ("sta_peak_dff", "sta_decay_s", "amplitude_mean_dff", "amplitude_sd_dff",
                 "noise_sd_dff", "nu_median"):
        ref = _value(df, "real", stat)
        assert abs(_value(df, "good", stat) - ref) < abs(_value(df, "bad", stat) - ref), stat
    assert _value(df, "good", "c2st_auc") < 0.65
    assert _value(df, "bad", "c2st_auc") > 0.8


def test_outputs_written_and_tidy(result):
    df, out = result
    assert list(df.columns) == ["candidate", "statistic", "value", "reference", "unit", "n",
                                "seed"]
    assert not df.duplicated(["candidate", "statistic"]).any()
    assert (df.seed == 3).all()
    back = pd.read_csv(out / "metrics.csv")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    sta = pd.read_csv(out / "sta.csv")
    assert list(sta.columns) == ["time_s", "real", "good", "bad"]
    assert sta.loc[sta.time_s.abs().idxmin(), "real"] == pytest.approx(AMP, rel=0.05)
    assert list(pd.read_csv(out / "psd.csv").columns) == ["frequency_hz", "real", "good", "bad"]
    params = json.loads((out / "params.json").read_text())
    assert params["seed"] == 3 and params["c2st_window_s"] == 4.0
    for name in FIGURES:
        assert (out / "figures" / name).stat().st_size > 1000
    assert not list(out.rglob(".*tmp*"))


def _small(seed: int = 0, **kw) -> TraceSet:
    return _render(_spikes(seed, (1, 2, 300)), AMP, TAU, SIGMA, seed + 10, (1, 2, 300), **kw)


@pytest.mark.parametrize("case, message", [
    ("shape", "shape"),
    ("frame_rate", "Hz"),
    ("spikes", "other spikes"),
    ("no_spikes", "no spike times"),
    ("real_no_spikes", "no ground-truth spikes"),
    ("empty", "at least one candidate"),
    ("reserved", "reserved"),
    ("not_traceset", "must be a TraceSet"),
    ("all_nan", "no finite"),
    ("setting", "unknown setting"),
    ("negative", "positive number of seconds"),
])
def test_mismatches_refused(case, message):
    real = _small()
    cand = _render(_spikes(0, (1, 2, 300)), AMP, TAU, SIGMA, 99, (1, 2, 300))
    kw: dict = {}
    cands: dict = {"gan": cand}
    if case == "shape":
        cands = {"gan": TraceSet(cand.traces[:, :, :200], FR, spike_times=np.zeros(0),
                                 spike_offsets=np.zeros(3, np.int64))}
    elif case == "frame_rate":
        cands = {"gan": TraceSet(cand.traces, 25.0, spike_times=cand.spike_times,
                                 spike_offsets=cand.spike_offsets)}
    elif case == "spikes":
        moved = cand.spike_times.copy()
        moved[0] += 1.0 / FR  # one spike one frame later
        cands = {"gan": TraceSet(cand.traces, FR, spike_times=moved,
                                 spike_offsets=cand.spike_offsets)}
    elif case == "no_spikes":
        cands = {"gan": TraceSet(cand.traces, FR)}
    elif case == "real_no_spikes":
        real = TraceSet(real.traces, FR)
    elif case == "empty":
        cands = {}
    elif case == "reserved":
        cands = {"real": cand}
    elif case == "not_traceset":
        cands = {"gan": cand.traces}
    elif case == "all_nan":
        cands = {"gan": TraceSet(np.full(cand.traces.shape, np.nan), FR,
                                 spike_times=cand.spike_times, spike_offsets=cand.spike_offsets)}
    elif case == "setting":
        kw = dict(isolation_s=1.0)
    elif case == "negative":
        kw = dict(quiet_s=-1.0)
    with pytest.raises(CabenchError, match=message):
        evaluate_conditional(real, cands, None, classifier=False, **kw)


def test_same_spikes_accepted_without_output():
    real = _small()
    cand = _render(_spikes(0, (1, 2, 300)), AMP, TAU, SIGMA, 99, (1, 2, 300))
    df = evaluate_conditional(real, {"gan": cand}, None, classifier=False)
    assert set(df.candidate) == {"real", "gan"}
    assert "c2st_auc" not in set(df.statistic)


def test_classifier_judges_the_trace_given_the_spikes(sets):
    """Transients 3 frames late: the traces alone look like real ones (the classifier without
    the spike channel is at chance), only their timing relative to the spikes differs."""
    real = sets["real"]
    times, off = real.spike_times, real.spike_offsets
    late = _render((times + 3 / FR, off), AMP, TAU, SIGMA, 2)
    lagged = TraceSet(late.traces, FR, spike_times=times, spike_offsets=off)
    df = evaluate_conditional(real, {"lagged": lagged}, None, seed=3, device="cpu",
                              c2st_steps=200, c2st_window_s=4.0)
    assert _value(df, "lagged", "c2st_auc") > 0.8
    assert _value(df, "lagged", "sta_time_to_peak_s") == pytest.approx(3 / FR)

    def traces_only(ts: TraceSet) -> np.ndarray:  # (windows, 2, 120): trace, zeros
        x = (ts.traces - real.traces.min()) / np.ptp(real.traces)
        w = x.reshape(-1, 120)[:, None]
        return np.concatenate([w, np.zeros_like(w)], axis=1)

    blind = conditional_c2st(traces_only(real), traces_only(lagged), seed=3, steps=200)
    assert blind["auc"] < 0.65


def test_recordings_pooled_like_trials(sets, result):
    """Four one-trial recordings give what four trials of one recording give (nu aside: it is
    per cell of each recording)."""
    df, _ = result
    split = {k: [ts.select(trials=[i]) for i in range(SHAPE[0])] for k, ts in sets.items()}
    pooled = evaluate_conditional(split["real"], dict(good=split["good"], bad=split["bad"]),
                                  None, seed=3, device="cpu", c2st_steps=200,
                                  c2st_window_s=4.0)
    keep = ~df.statistic.str.startswith("nu_")
    pd.testing.assert_frame_equal(pooled[keep].reset_index(drop=True),
                                  df[keep].reset_index(drop=True))
    assert (pooled[pooled.statistic == "nu_median"].n == SHAPE[0] * SHAPE[1]).all()
    assert _value(pooled, "real", "nu_median") == pytest.approx(
        _value(df, "real", "nu_median"), rel=0.05)
    with pytest.raises(CabenchError, match="one per real recording"):
        evaluate_conditional(split["real"], {"good": split["good"][:3]}, None, classifier=False)
    other = [split["real"][0], TraceSet(split["real"][1].traces, 25.0,
                                        spike_times=np.zeros(0),
                                        spike_offsets=np.zeros(5, np.int64))]
    with pytest.raises(CabenchError, match="resample"):
        evaluate_conditional(other, {"good": other}, None, classifier=False)


def test_load_recordings_folder_of_trace_files(tmp_path):
    a, b = _small(0), _small(1)
    b.save(tmp_path / "rec1.h5")
    a.save(tmp_path / "rec0.h5")
    back = load_recordings(tmp_path)
    assert [np.array_equal(x.traces, y.traces) for x, y in zip(back, (a, b), strict=True)] == [
        True, True]
    assert np.array_equal(load_recordings(tmp_path / "rec1.h5")[0].spike_times, b.spike_times)
    with pytest.raises(CabenchError, match="no such file"):
        load_recordings(tmp_path / "missing.h5")
