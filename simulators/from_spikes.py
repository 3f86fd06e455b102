"""Calcium traces for given spike trains: the simulator's indicator and noise model only.

:func:`traces_from_spikes` renders dF/F for the spikes of a :class:`~cabench.traceset.TraceSet`
(e.g. a real ground-truth recording) with the calcium model of an indicator preset, so that a
recording gets a *simulated twin*: same spikes, same frames, noise level nu matched per cell.

It runs the simulation pipeline itself (:class:`cabench.simulators.pipeline.Simulation`) with
its spike generator replaced by the given spikes, so amplitudes, kinetics, nonlinearity,
drift, neuropil and the noise keys are exactly the pipeline's: for spikes simulated with seed
``s`` and the same parameters, the output equals that simulation (calcium and noisy traces).
Noise is then calibrated per (trial, cell) to the target nu with the pipeline's own solver
(:func:`cabench.simulators.calcium.sigma_for_nu`), which allows one target per cell.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from cabench.errors import CabenchError
from cabench.simulators import calcium as ca
from cabench.simulators.params import PARAMS, resolve
from cabench.simulators.pipeline import Simulation
from cabench.simulators.presets import PRESETS, preset_for_indicator
from cabench.traceset import TraceSet, ragged

#: simulation parameters a caller may set: the indicator, baseline and noise model (the
#: population, time grid and spike model come from the given spikes)
CALCIUM_PARAMS: tuple[str, ...] = tuple(
    p.name for p in PARAMS[[q.name for q in PARAMS].index("indicator"):] if p.name != "seed"
)
#: spike-model settings forced so that the pipeline's unused population draws stay trivial
_NEUTRAL_SPIKES = dict(spike_model="poisson", rate_sigma=0.0, correlation=0.0,
                       correlation_matrix=None, gain_sd=0.0, stimulus_depth=0.0,
                       burst_fraction=0.0, refractory=0.0)
_WHITE_NU_TO_SIGMA = 1.0 / 0.9538725524732674  # sigma = nu * sqrt(fr) / 100 / 0.954 (white)


class _GivenSpikes(Simulation):
    """The pipeline with its spike generator replaced by fixed trains (s, render clock)."""

    def __init__(self, user: dict[str, Any], preset: str | None,
                 trains: list[np.ndarray]) -> None:
        self._trains = trains  # cell-major: cell c, trial t at c * n_trials + t
        super().__init__(user, preset)

    def _spikes(self, b0: int, b1: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
        nt = self.n_trials
        return ragged([self._trains[c * nt + trial] for c in range(b0, b1)])


def traces_from_spikes(
    spikes: TraceSet,
    preset: str | None = None,
    params: dict[str, Any] | None = None,
    noise_level: float | np.ndarray | None = None,
    seed: int = 0,
) -> TraceSet:
    """Simulated dF/F traces (fraction) for the ground-truth spikes of ``spikes``.

    Every trial and cell of ``spikes`` is rendered on its frames (same frame rate in Hz and
    frame times in s; an irregular frame clock is followed exactly) with the calcium model of
    ``preset`` (default: the preset of ``spikes.indicator``, e.g. ``GCaMP6f``), overridden by
    ``params`` (indicator, kinetics, nonlinearity, amplitude variability, drift, neuropil and
    noise parameters of :mod:`cabench.simulators.params`; see :data:`CALCIUM_PARAMS`).

    ``noise_level``: the target CASCADE noise level nu (% Hz^-1/2) of every trace, a scalar or
    one value per cell (e.g. the real recording's measured nu; 0: noiseless); None uses the
    parameters' ``noise`` (or ``sigma``, the noise SD in dF/F, if set). A cell whose signal
    alone varies more per frame than its target allows gets the white-noise SD of the target
    (a warning).

    Returns a TraceSet with source ``simulated``, the spikes unchanged, the noiseless dF/F in
    ``calcium``, frames that are NaN in ``spikes.traces`` NaN again, and ``params`` recording
    the preset, the resolved calcium parameters, the seed, the noise targets and the noise SD
    per (trial, cell). Deterministic under ``seed``. Spikes more than one frame before the
    first frame are not rendered (they stay in the ground truth).
    """
    ts = _check_spikes(spikes)
    preset = _pick_preset(ts, preset)
    user = dict(params or {})
    bad = sorted(set(user) - set(CALCIUM_PARAMS))
    if bad:
        raise CabenchError(f"traces_from_spikes: parameter(s) {', '.join(bad)} cannot be set "
                           f"(they come from the spikes); valid: {', '.join(CALCIUM_PARAMS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CabenchError(f"seed must be a non-negative integer, got {seed!r}")
    nt, nc, n_frames = ts.n_trials, ts.n_cells, ts.n_frames
    fr, clock = _render_clock(ts)
    trains = [_on_render_clock(ts.spikes(t, c), clock, fr) for c in range(nc) for t in range(nt)]
    sim_user = {
        **user, **_NEUTRAL_SPIKES, "cells": nc, "trials": nt, "frame_rate": fr,
        "duration": n_frames / fr, "rate": min(0.5, 0.1 * fr), "max_rate": 0.2 * fr,
        "seed": int(seed), "sigma": 0.0, "noise": None,
    }
    sim = _GivenSpikes(sim_user, preset, trains)
    # the noise model of the resolved parameters, with the caller's noise settings
    noise_p = resolve({k: user.get(k) for k in ("noise", "sigma")}, preset)
    rendered = sim.run(keep_calcium=True)  # sigma 0: noiseless (calcium + drift + neuropil)
    p = sim.params
    shot = p["shot_fraction"] if p["noise_model"] == "poisson-gaussian" else 0.0
    rows = rendered.traces.reshape(nt * nc, n_frames)  # (trial, cell) order, a view
    keys = ca.noise_keys(sim._noise_seed(), np.repeat(np.arange(nt), nc),
                         np.tile(np.arange(nc), nt), nc)
    if noise_level is None and noise_p["sigma"] is not None:
        target = None
        sigma = np.full(nt * nc, noise_p["sigma"])
    else:
        target = _targets(noise_p["noise"] if noise_level is None else noise_level, nc)
        sigma = _calibrate(rows, keys, np.tile(target, nt), fr, shot)
    ca.add_noise(rows, keys, sigma.astype(np.float32), np.float32(shot))
    traces = rendered.traces
    traces[~np.isfinite(ts.traces)] = np.nan
    record = {k: p[k] for k in CALCIUM_PARAMS if k in p}
    record.update(
        generator="traces_from_spikes", preset=preset, seed=int(seed), render_frame_rate=fr,
        noise_level_target=None if target is None else target.tolist(),
        noise_sd=sigma.reshape(nt, nc).tolist(), sigma=None if target is not None else
        float(sigma[0]), noise=None, spikes_source=ts.source, spikes_params=dict(ts.params),
    )
    return TraceSet(
        traces=traces, frame_rate=ts.frame_rate, spike_times=ts.spike_times.copy(),
        spike_offsets=ts.spike_offsets.copy(), calcium=rendered.calcium,
        frame_times=None if ts.frame_times is None else ts.frame_times.copy(),
        cell_names=None if ts.cell_names is None else list(ts.cell_names),
        source="simulated", indicator=p["indicator"], seed=int(seed), params=record,
    )


# --- checks -------------------------------------------------------------------------------------
def _check_spikes(ts: Any) -> TraceSet:
    if not isinstance(ts, TraceSet):
        raise CabenchError(f"traces_from_spikes needs a TraceSet with spikes, got "
                           f"{type(ts).__name__}")
    if not ts.has_spikes:
        raise CabenchError("the trace set has no ground-truth spikes (spike_times); "
                           "traces_from_spikes renders given spikes")
    if ts.n_cells < 1 or ts.n_trials < 1 or ts.n_frames < 2:
        raise CabenchError(f"the trace set is empty or too short: shape {ts.traces.shape} "
                           "(trials, cells, frames), at least 2 frames needed")
    if ts.spike_times.size == 0:
        raise CabenchError("the trace set has no spikes at all: nothing to render")
    if not np.isfinite(ts.spike_times).all():
        raise CabenchError(f"{int((~np.isfinite(ts.spike_times)).sum())} spike time(s) are NaN "
                           "or infinite")
    t = ts.times()
    if not np.isfinite(t).all():
        raise CabenchError(f"{int((~np.isfinite(t)).sum())} frame time(s) are NaN or infinite")
    if np.any(np.diff(t) <= 0):
        raise CabenchError("frame times must increase")
    return ts


def _pick_preset(ts: TraceSet, preset: str | None) -> str:
    if preset is not None:
        if preset not in PRESETS:
            raise CabenchError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        return preset
    found = preset_for_indicator(ts.indicator)
    if found is None:
        what = f"indicator {ts.indicator!r}" if ts.indicator else "no indicator"
        raise CabenchError(f"the spikes name {what}, which has no preset; pass preset= one of "
                           f"{', '.join(PRESETS)}")
    return found


def _targets(value: Any, n_cells: int) -> np.ndarray:
    """Target nu per cell (% Hz^-1/2), float64 ``(cells,)``."""
    try:
        nu = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CabenchError(f"noise level must be a number or one per cell, got {value!r}") from None
    if nu.ndim == 0:
        nu = np.full(n_cells, float(nu))
    if nu.shape != (n_cells,):
        raise CabenchError(f"noise level: {nu.size} values for {n_cells} cells (give a scalar "
                           "or one per cell)")
    if not np.isfinite(nu).all() or (nu < 0).any():
        raise CabenchError("noise level nu (% Hz^-1/2) must be finite and >= 0 for every "
                           f"cell, got {nu.tolist()}")
    return nu


# --- time grid and noise --------------------------------------------------------------------
def _render_clock(ts: TraceSet) -> tuple[float, np.ndarray | None]:
    """Rate (Hz) of the render grid (frame k at k / rate) and the frame times when the clock
    needs a warp (None: a shift by the first frame time is enough)."""
    if ts.frame_times is None:
        return ts.frame_rate, None
    t = ts.frame_times
    fr = (t.size - 1) / float(t[-1] - t[0])
    regular = np.abs(t - (t[0] + np.arange(t.size) / fr)).max() <= 1e-3 / fr
    return fr, (t[:1] if regular else t)


def _on_render_clock(spikes: np.ndarray, clock: np.ndarray | None, fr: float) -> np.ndarray:
    """Spike times (s) on the render grid, sorted, without those the renderer cannot place."""
    s = np.sort(np.asarray(spikes, dtype=np.float64))
    if clock is not None and clock.size == 1:
        s = s - clock[0]
    elif clock is not None:  # irregular frames: fractional frame index, linear beyond the ends
        k = np.arange(clock.size, dtype=np.float64)
        x = np.interp(s, clock, k)
        x[s < clock[0]] = (s[s < clock[0]] - clock[0]) * fr
        late = s > clock[-1]
        x[late] = k[-1] + (s[late] - clock[-1]) * fr
        s = x / fr
    return s[s * fr - 1e-9 > -1.0]  # a spike at <= -1 frame has no frame to appear in


def _calibrate(rows: np.ndarray, keys: np.ndarray, target: np.ndarray, fr: float,
               shot: float) -> np.ndarray:
    """Noise SD per row (dF/F) so that each row's nu hits its target (the pipeline's solver)."""
    sigma = np.empty(rows.shape[0])
    for nu in np.unique(target):
        idx = np.flatnonzero(target == nu)
        if nu == 0:  # noiseless
            sigma[idx] = 0.0
            continue
        sigma[idx] = ca.sigma_for_nu(np.ascontiguousarray(rows[idx]), keys[idx], float(nu), fr,
                                     shot, ca.NU_SAMPLE)
    bad = sigma < 0
    if bad.any():
        warnings.warn(f"{int(bad.sum())} trace(s) change more per frame than their noise level "
                      "allows; they get the white-noise SD of that level and a higher nu",
                      stacklevel=3)
        sigma[bad] = target[bad] * np.sqrt(fr) / 100.0 * _WHITE_NU_TO_SIGMA
    return sigma
