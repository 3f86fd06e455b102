"""traces_from_spikes: the simulator's calcium and noise model on given spikes."""

from __future__ import annotations

import numpy as np
import pytest

from cabench.errors import CabenchError
from cabench.noise_level import noise_level_nu
from cabench.simulators import simulate
from cabench.simulators.from_spikes import traces_from_spikes
from cabench.simulators.presets import PRESETS
from cabench.traceset import TraceSet, ragged

FIXED = dict(amplitude_cv=0.0, cell_amplitude_cv=0.0)


def spike_set(trains: list[list[float]], n_frames: int, frame_rate: float, t0: float = 0.0,
              indicator: str = "GCaMP6f", frame_times: np.ndarray | None = None) -> TraceSet:
    """One trial; ``trains[c]`` are cell c's spike times (s)."""
    times, offsets = ragged([np.asarray(t, float) for t in trains])
    ft = t0 + np.arange(n_frames) / frame_rate if frame_times is None else frame_times
    return TraceSet(np.zeros((1, len(trains), n_frames), np.float32), frame_rate, times,
                    offsets, frame_times=ft, indicator=indicator,
                    cell_names=[f"n{c}" for c in range(len(trains))])


def kernel(t: np.ndarray, amplitude: float, decay: float, rise: float, hill: float,
           saturation: float) -> np.ndarray:
    """The indicator's response (dF/F) to one spike at t = 0, written out independently."""
    t_peak = decay * rise / (decay - rise) * np.log(decay / rise)
    peak = np.exp(-t_peak / decay) - np.exp(-t_peak / rise)
    c = np.where(t >= 0, (np.exp(-t / decay) - np.exp(-t / rise)) / peak, 0.0)
    ch = np.clip(c, 0, None) ** hill
    return amplitude * (1 + saturation) * ch / (1 + saturation * ch)


def test_one_spike_is_the_preset_kernel():
    fr, t0, spike = 1000.0, 5.0, 6.0
    out = traces_from_spikes(spike_set([[spike]], 3000, fr, t0), params=FIXED, noise_level=0)
    p = PRESETS["GCaMP6f"]
    t = out.times() - spike
    want = kernel(t, p["amplitude"], p["decay"], p["rise"], p["hill"], p["saturation"])
    np.testing.assert_allclose(out.calcium[0, 0], want, atol=2e-5)
    np.testing.assert_array_equal(out.traces, out.calcium)  # nu 0: noiseless
    assert out.calcium.max() == pytest.approx(p["amplitude"], rel=1e-3)
    # the decay of a linear indicator is the preset's time constant
    lin = traces_from_spikes(spike_set([[spike]], 5000, fr, t0, indicator="OGB1"),
                             params={**FIXED, "saturation": 0.0}, noise_level=0)
    tail = (lin.times() > spike + 0.5) & (lin.times() < spike + 3.0)
    slope = np.polyfit(lin.times()[tail], np.log(lin.calcium[0, 0, tail]), 1)[0]
    assert -1.0 / slope == pytest.approx(PRESETS["OGB-1"]["decay"], rel=1e-3)
    assert lin.params["preset"] == "OGB-1"


def test_same_spikes_through_the_pipeline_give_the_same_data():
    sim = simulate(preset="GCaMP6s", cells=4, trials=2, duration=20.0, noise=2.0, seed=3)
    spikes_only = TraceSet(np.zeros_like(sim.traces), sim.frame_rate, sim.spike_times,
                           sim.spike_offsets, indicator="GCaMP6s")
    out = traces_from_spikes(spikes_only, noise_level=2.0, seed=3)
    np.testing.assert_array_equal(out.calcium, sim.calcium)
    np.testing.assert_array_equal(out.traces, sim.traces)
    other = traces_from_spikes(spikes_only, noise_level=2.0, seed=4)
    assert not np.array_equal(other.traces, sim.traces)


def test_noise_level_per_cell_is_reached_and_deterministic():
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, 60, n)) for n in (20, 60, 120)]
    ts = spike_set(trains, 1800, 30.0, t0=2.0)
    target = np.array([1.0, 3.0, 6.0])
    out = traces_from_spikes(ts, noise_level=target, seed=7)
    np.testing.assert_allclose(noise_level_nu(out.traces, out.frame_rate), target, rtol=0.05)
    again = traces_from_spikes(ts, noise_level=target, seed=7)
    np.testing.assert_array_equal(out.traces, again.traces)
    assert out.params["seed"] == 7 and out.params["noise_level_target"] == target.tolist()
    scalar = traces_from_spikes(ts, noise_level=2.0, seed=1)
    np.testing.assert_allclose(noise_level_nu(scalar.traces, 30.0), 2.0, rtol=0.05)


def test_spikes_frames_and_nan_frames_are_kept():
    ts = spike_set([[1.0, 2.5], [], [0.3]], 120, 30.0, t0=10.0)
    ts.spike_times += 10.0
    ts.traces[0, 1, 50:60] = np.nan
    out = traces_from_spikes(ts, noise_level=2.0)
    np.testing.assert_array_equal(out.spike_times, ts.spike_times)
    np.testing.assert_array_equal(out.spike_offsets, ts.spike_offsets)
    np.testing.assert_array_equal(out.frame_times, ts.frame_times)
    assert out.frame_rate == ts.frame_rate and out.cell_names == ts.cell_names
    assert out.source == "simulated" and out.indicator == "GCaMP6f"
    assert np.isnan(out.traces[0, 1, 50:60]).all() and np.isfinite(out.traces[0, 0]).all()


def test_irregular_frame_clock_is_followed():
    fr = 20.0
    steps = np.where(np.arange(199) % 2 == 0, 0.04, 0.06)  # alternating frame intervals
    ft = np.concatenate([[0.0], np.cumsum(steps)])
    j = 101
    ts = spike_set([[ft[j]]], 200, fr, frame_times=ft)
    out = traces_from_spikes(ts, params=FIXED, noise_level=0)
    c = out.calcium[0, 0]
    # a spike exactly on frame j: nothing before, the rise starts right after
    assert np.all(c[: j + 1] == 0) and c[j + 1] > 0


def test_bad_input_gives_clear_errors():
    ok = spike_set([[1.0]], 100, 30.0)
    no_spikes = TraceSet(np.zeros((1, 1, 100), np.float32), 30.0, indicator="GCaMP6f")
    with pytest.raises(CabenchError, match="no ground-truth spikes"):
        traces_from_spikes(no_spikes)
    with pytest.raises(CabenchError, match="no spikes at all"):
        traces_from_spikes(spike_set([[], []], 100, 30.0))
    with pytest.raises(CabenchError, match="frame time"):
        traces_from_spikes(spike_set([[1.0]], 100, 30.0,
                                     frame_times=np.r_[np.arange(99) / 30.0, np.nan]))
    bad_times = spike_set([[1.0, np.nan]], 100, 30.0)
    with pytest.raises(CabenchError, match="spike time"):
        traces_from_spikes(bad_times)
    with pytest.raises(CabenchError, match="GCaMP6f, GCaMP6s"):
        traces_from_spikes(spike_set([[1.0]], 100, 30.0, indicator="Cal520"))
    with pytest.raises(CabenchError, match="unknown preset"):
        traces_from_spikes(ok, preset="nope")
    with pytest.raises(CabenchError, match="cannot be set"):
        traces_from_spikes(ok, params={"cells": 3})
    with pytest.raises(CabenchError, match="1 cells"):
        traces_from_spikes(ok, noise_level=[1.0, 2.0])
    with pytest.raises(CabenchError, match=">= 0"):
        traces_from_spikes(ok, noise_level=np.nan)
    with pytest.raises(CabenchError, match="TraceSet"):
        traces_from_spikes(np.zeros((1, 1, 10)))
