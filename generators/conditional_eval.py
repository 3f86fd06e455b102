"""Evaluate traces generated for given spikes against held-out real recordings of those spikes.

``evaluate_conditional(real, candidates, output)`` takes a real :class:`~cabench.TraceSet` with
ground-truth spikes and candidates (e.g. ``gan``, ``simulated``) whose traces were made for the
SAME spikes: same ``(trials, cells, frames)``, frame rate (Hz) and spike counts in every frame.
Held-out ground truth is often many short recordings (one cell each): ``real`` may be a list of
TraceSets at one frame rate, each candidate a list in the same order; events, spectrum segments,
cells and classifier windows are pooled over the recordings. Every statistic is computed for
real and for each candidate on the same frames:

1. **Single-spike response.** An *isolated single spike* is a frame holding exactly one spike
   with no other spike in the ``isolation_before_s`` before and ``isolation_after_s`` after it
   (whole frames, rounded up), whose spike-triggered window (``sta_before_s`` before,
   ``sta_after_s`` after) lies inside the trial and is finite in real and in every candidate.
   Each event's window is baseline-subtracted (mean of the frames before the spike frame; a
   constant cannot remove the tail of an earlier transient, so ``isolation_before_s`` should
   span two or more decay times of the indicator); the
   spike-triggered average (STA, dF/F) gives the peak (dF/F), the time to peak (s from the spike
   frame, at frame resolution) and the 1/e decay time (s from the peak to the first fall below
   peak / e, linearly interpolated; NaN when it stays above). Each candidate's STA is compared
   with real's by RMSE (dF/F) and Pearson correlation.
2. **Amplitude distribution.** Per event, the least-squares scale of its window (from the spike
   frame on) onto the dataset's own STA normalised to peak 1, in dF/F: unbiased by noise (its
   mean is the STA peak) where the maximum of a noisy window is not. Compared with real's by the
   Wasserstein distance (dF/F) and the two-sample KS statistic.
3. **Noise spectrum** of spike-free stretches: frames with no spike in the ``quiet_s`` before
   them (the spike frame included), finite everywhere, cut into non-overlapping segments of
   ``psd_segment_s``; the periodogram (Hann window, linear detrend) of each segment, averaged,
   in (dF/F)^2/Hz. ``noise_sd_dff`` is the square root of its integral above 0 Hz; the distance
   to real is the RMS of log10(PSD / real's PSD) over the frequencies above 0 Hz (decades).
4. **Noise level nu** per cell (:func:`cabench.noise_level.noise_level_nu`, % Hz^-1/2, all
   frames): the median over cells, the Wasserstein distance of the per-cell values and the
   median over cells of |nu / real's nu - 1| (cells are paired).
5. **Conditional classifier two-sample test.** Each (trial, cell) is cut into non-overlapping
   windows of ``c2st_window_s`` (at most the longest recording; shorter recordings give none);
   a sample is a window with two channels, the trace (scaled by real's min and max to [0, 1])
   and the spike counts per frame (divided by real's largest count). Real and candidate share
   the spike channel, so spikes alone cannot separate them: the classifier
   (:class:`~cabench.generators.evaluate.WindowClassifier`) has to judge the trace given the
   spikes. The split is by window: a random half of the windows trains (real and candidate
   versions of each), the other half tests, so no spike pattern is seen in both; the same seed
   gives every candidate the same split. Test ROC AUC
   (:func:`~cabench.generators.evaluate.roc_auc`): 0.5 = indistinguishable. Deterministic for a
   seed on the CPU.

The table (:data:`COLUMNS`) has one row per (candidate, statistic): ``value`` and, where it
applies, real's ``reference`` value; real's own descriptive rows have candidate ``real``.
With ``output``: ``metrics.csv``, ``sta.csv`` (time_s, one STA column per dataset),
``psd.csv`` (frequency_hz, one column per dataset), ``params.json`` and ``figures/``
(:data:`FIGURES`), all written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cabench.errors import CabenchError
from cabench.generators.evaluate import cut_windows, fit_classifier
from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceSet, atomic_path

__all__ = [
    "COLUMNS",
    "FIGURES",
    "PARAMS",
    "ConditionalStats",
    "compute_conditional",
    "conditional_c2st",
    "evaluate_conditional",
    "event_amplitudes",
    "isolated_spikes",
    "load_recordings",
    "quiet_psd",
    "sta_shape",
]

#: Columns of metrics.csv. ``n``: events, cells, PSD segments or test windows per class.
COLUMNS = ("candidate", "statistic", "value", "reference", "unit", "n", "seed")
#: Figure files written into ``figures/``.
FIGURES = ("sta.png", "amplitudes.png", "psd.png", "nu.png")
#: Settings of the evaluation: default and meaning (the keyword arguments of
#: :func:`compute_conditional`).
PARAMS: dict[str, tuple[float, str]] = {
    "isolation_before_s": (2.0, "no other spike this long (s) before an isolated spike"),
    "isolation_after_s": (2.0, "no other spike this long (s) after an isolated spike"),
    "sta_before_s": (0.5, "STA window before the spike (s); its mean is the baseline"),
    "sta_after_s": (2.0, "STA window after the spike (s)"),
    "quiet_s": (3.0, "spike-free frames: no spike this long (s) before them"),
    "psd_segment_s": (2.0, "segment length (s) of the noise periodograms"),
    "c2st_window_s": (8.0, "window length (s) of the classifier test"),
}
UNITS = {
    "n_events": "count", "sta_peak_dff": "dF/F", "sta_time_to_peak_s": "s",
    "sta_decay_s": "s", "sta_rmse_dff": "dF/F", "sta_correlation": "Pearson r",
    "amplitude_mean_dff": "dF/F", "amplitude_sd_dff": "dF/F",
    "amplitude_wasserstein_dff": "dF/F", "amplitude_ks": "KS statistic",
    "noise_sd_dff": "dF/F", "psd_log_rmse": "log10 decades", "nu_median": "% Hz^-1/2",
    "nu_wasserstein": "% Hz^-1/2", "nu_rel_error": "fraction", "c2st_auc": "ROC AUC",
    "c2st_accuracy": "fraction",
}
REAL = "real"
#: recordings pooled together may differ this much in frame rate (relative): resampling on
#: each recording's own clock leaves rates like 30.0009 and 30.0026 Hz
RATE_MATCH = 1e-3
_DESCRIPTIVE = ("n_events", "sta_peak_dff", "sta_time_to_peak_s", "sta_decay_s",
                "amplitude_mean_dff", "amplitude_sd_dff", "noise_sd_dff", "nu_median")


# --- inputs ---------------------------------------------------------------------------------
Recordings = TraceSet | Sequence[TraceSet]


def _as_lists(real: Recordings, candidates: Mapping[str, Recordings]
              ) -> tuple[list[TraceSet], dict[str, list[TraceSet]]]:
    """Real and candidates as lists of recordings of equal length (one TraceSet: a list of 1)."""
    if not isinstance(candidates, Mapping) or not candidates:
        raise CabenchError("give at least one candidate (name -> trace set) to compare with real")
    single = isinstance(real, TraceSet)
    reals = [real] if single else list(real) if isinstance(real, Sequence) else None
    if not reals:
        raise CabenchError(f"real must be a TraceSet or a non-empty list of them, got "
                           f"{type(real).__name__}")
    cands = {}
    for name, c in candidates.items():
        if name == REAL:
            raise CabenchError("'real' is reserved for the real recordings; rename the candidate")
        cl = [c] if isinstance(c, TraceSet) else list(c) if isinstance(c, Sequence) else [c]
        if len(cl) != len(reals):
            raise CabenchError(f"candidate {name!r} holds {len(cl)} recordings but real holds "
                               f"{len(reals)}; give one per real recording, in the same order")
        cands[name] = cl
    return reals, cands


def load_recordings(path: str | Path) -> list[TraceSet]:
    """Recordings from ``path``: a folder of ``.h5`` trace files (sorted by name, one recording
    each), or anything :func:`cabench.readers.read_traces` reads (a trace file, a CASCADE
    ground-truth folder, ...)."""
    from cabench.readers import read_traces

    path = Path(path)
    files = sorted(path.glob("*.h5")) if path.is_dir() else []
    sets = [TraceSet.load(f) for f in files] if files else read_traces(path)
    if not sets:
        raise CabenchError(f"{path}: no recordings found")
    return sets


def _check_recording(real: TraceSet, candidates: Mapping[str, TraceSet], where: str
                     ) -> np.ndarray:
    """Spike counts per frame ``(trials, cells, frames)`` shared by real and the candidates of
    one recording, or an error naming the problem."""
    if not isinstance(real, TraceSet):
        raise CabenchError(f"{where}real must be a TraceSet, got {type(real).__name__}")
    if not real.has_spikes:
        raise CabenchError(f"{where}the real recordings have no ground-truth spikes; the "
                           "conditional evaluation needs them")
    if not np.isfinite(real.traces).any():
        raise CabenchError(f"{where}the real traces hold no finite values")
    counts = real.binned_spikes()
    for name, ts in candidates.items():
        if not isinstance(ts, TraceSet):
            raise CabenchError(f"{where}candidate {name!r} must be a TraceSet, got "
                               f"{type(ts).__name__}")
        if ts.traces.shape != real.traces.shape:
            raise CabenchError(f"{where}candidate {name!r} has shape {ts.traces.shape} "
                               f"(trials, cells, frames) but real has {real.traces.shape}")
        if not math.isclose(ts.frame_rate, real.frame_rate, rel_tol=1e-6):
            raise CabenchError(f"{where}candidate {name!r} is at {ts.frame_rate:g} Hz but real "
                               f"at {real.frame_rate:g} Hz")
        if not ts.has_spikes:
            raise CabenchError(f"{where}candidate {name!r} has no spike times; store the spikes "
                               "it was made for in its trace set")
        if not np.isfinite(ts.traces).any():
            raise CabenchError(f"{where}candidate {name!r} holds no finite trace values")
        diff = np.argwhere(ts.binned_spikes() != counts)
        if diff.size:
            t, c, k = (int(v) for v in diff[0])
            raise CabenchError(f"{where}candidate {name!r} was made for other spikes than real: "
                               f"{len(diff)} frames differ in spike count, first trial {t} "
                               f"cell {c} frame {k}")
    return counts


# --- single-spike responses -----------------------------------------------------------------
def isolated_spikes(counts: np.ndarray, frame_rate: float, before_s: float, after_s: float,
                    n_pre: int, n_post: int, finite: np.ndarray | None = None) -> np.ndarray:
    """Isolated single spikes ``(events, 3)`` int64 rows ``(trial, cell, frame)``.

    ``counts``: spikes per frame ``(trials, cells, frames)``. A frame qualifies with exactly one
    spike, none other in ``ceil(before_s * frame_rate)`` frames before and
    ``ceil(after_s * frame_rate)`` after, frames ``frame - n_pre .. frame + n_post`` inside the
    trial and (with ``finite``, bool like ``counts``) all finite.
    """
    c = np.asarray(counts, dtype=np.float64)
    nb, na = math.ceil(before_s * frame_rate), math.ceil(after_s * frame_rate)
    frames = c.shape[-1]
    csum = np.concatenate([np.zeros(c.shape[:-1] + (1,)), np.cumsum(c, -1)], -1)
    k = np.arange(frames)
    lo, hi = np.clip(k - nb, 0, frames), np.clip(k + na + 1, 0, frames)
    around = csum[..., hi] - csum[..., lo]
    ok = (c == 1) & (around == 1)
    ok &= (k >= n_pre) & (k + n_post < frames)
    if finite is not None:
        bad = np.concatenate([np.zeros(c.shape[:-1] + (1,)), np.cumsum(~finite, -1)], -1)
        w_lo, w_hi = np.clip(k - n_pre, 0, frames), np.clip(k + n_post + 1, 0, frames)
        ok &= (bad[..., w_hi] - bad[..., w_lo]) == 0
    return np.argwhere(ok).astype(np.int64)


def _event_windows(traces: np.ndarray, events: np.ndarray, n_pre: int, n_post: int
                   ) -> np.ndarray:
    """Baseline-subtracted windows ``(events, n_pre + n_post + 1)`` float64 (dF/F)."""
    if len(events) == 0:
        return np.zeros((0, n_pre + n_post + 1))
    idx = events[:, 2:3] + np.arange(-n_pre, n_post + 1)
    w = traces[events[:, 0:1], events[:, 1:2], idx].astype(np.float64)
    return w - w[:, :n_pre].mean(1, keepdims=True)


def sta_shape(sta: np.ndarray, frame_rate: float, n_pre: int) -> dict[str, float]:
    """``peak_dff``, ``time_to_peak_s`` (from the spike frame, frame resolution) and
    ``decay_s`` (peak to the first fall below peak / e, interpolated; NaN if none) of a
    spike-triggered average (dF/F) whose spike frame is index ``n_pre``."""
    post = np.asarray(sta, dtype=np.float64)[n_pre:]
    if post.size == 0 or not np.isfinite(post).all():
        return dict(peak_dff=math.nan, time_to_peak_s=math.nan, decay_s=math.nan)
    p = int(np.argmax(post))
    peak = float(post[p])
    decay = math.nan
    if peak > 0:
        below = np.flatnonzero(post[p:] <= peak / math.e)
        if below.size:
            j = p + int(below[0])
            y0, y1 = post[j - 1], post[j]
            frac = (y0 - peak / math.e) / (y0 - y1) if y0 != y1 else 0.0
            decay = (j - 1 + frac - p) / frame_rate
    return dict(peak_dff=peak, time_to_peak_s=p / frame_rate, decay_s=decay)


def event_amplitudes(windows: np.ndarray, sta: np.ndarray, n_pre: int) -> np.ndarray:
    """Per event, the least-squares scale (dF/F) of its window from the spike frame on onto
    ``sta`` normalised to peak 1; the plain peak over that span when the STA has no positive
    peak."""
    post = np.asarray(sta, dtype=np.float64)[n_pre:]
    w = np.asarray(windows, dtype=np.float64)[:, n_pre:]
    peak = float(post.max()) if post.size else 0.0
    if w.shape[0] == 0 or not peak > 0:
        return w.max(1) if w.shape[0] else np.zeros(0)
    shape = post / peak
    return w @ shape / float(shape @ shape)


# --- noise ----------------------------------------------------------------------------------
def quiet_psd(traces: np.ndarray, counts: np.ndarray, frame_rate: float, quiet_s: float,
              segment: int, finite: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean periodogram of spike-free segments: ``(frequencies Hz, PSD (dF/F)^2/Hz, segments)``.

    A frame is spike-free with no spike in it and the ``ceil(quiet_s * frame_rate)`` frames
    before it (and finite where ``finite`` says). Runs of such frames are cut into
    non-overlapping segments of ``segment`` frames; Hann window, linear detrend, one-sided.
    """
    from scipy.signal import periodogram

    c = np.asarray(counts, dtype=np.float64)
    nq = math.ceil(quiet_s * frame_rate)
    frames = c.shape[-1]
    csum = np.concatenate([np.zeros(c.shape[:-1] + (1,)), np.cumsum(c, -1)], -1)
    k = np.arange(frames)
    quiet = (csum[..., k + 1] - csum[..., np.clip(k - nq, 0, frames)]) == 0
    quiet &= k >= nq
    if finite is not None:
        quiet &= finite
    segs = []
    x = np.asarray(traces, dtype=np.float64)
    for t, cell in np.ndindex(*c.shape[:-1]):
        q = np.concatenate([[0], quiet[t, cell].astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(q))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            for s in range(a, b - segment + 1, segment):
                segs.append(x[t, cell, s:s + segment])
    freqs = np.fft.rfftfreq(segment, 1.0 / frame_rate)
    if not segs:
        return freqs, np.full(freqs.size, np.nan), 0
    f, p = periodogram(np.stack(segs), fs=frame_rate, window="hann", detrend="linear", axis=-1)
    return f, p.mean(0), len(segs)


# --- conditional classifier two-sample test -------------------------------------------------
def conditional_c2st(real: np.ndarray, fake: np.ndarray, seed: int = 0,
                     device: str | torch.device = "cpu", steps: int = 300,
                     batch_size: int = 32, lr: float = 1e-3) -> dict[str, float]:
    """Classifier test of paired windows ``(n, channels, frames)``: ``real[i]`` and ``fake[i]``
    share their conditioning (the spike channel). A random half of the pairs trains (both
    members), the other half tests; inputs are used as given (scale them first). Returns test
    ``auc``, ``accuracy`` and ``n_test`` windows per class; NaN with fewer than 4 pairs."""
    if real.shape != fake.shape:
        raise CabenchError(f"paired windows must have one shape, got {real.shape} and "
                           f"{fake.shape}")
    n = len(real)
    if n < 4:
        return dict(auc=math.nan, accuracy=math.nan, n_test=0)
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    tr, te = perm[: n // 2], perm[n // 2:]
    xr = torch.from_numpy(np.nan_to_num(np.asarray(real, np.float32)))
    xf = torch.from_numpy(np.nan_to_num(np.asarray(fake, np.float32)))
    x_train = torch.cat([xr[tr], xf[tr]])
    y_train = torch.cat([torch.ones(len(tr)), torch.zeros(len(tr))])
    x_test = torch.cat([xr[te], xf[te]])
    y_test = torch.cat([torch.ones(len(te)), torch.zeros(len(te))])
    auc, accuracy = fit_classifier(x_train, y_train, x_test, y_test, seed, gen, device, steps,
                                   batch_size, lr)
    return dict(auc=auc, accuracy=accuracy, n_test=int(len(te)))


def _c2st_windows(traces: np.ndarray, counts: np.ndarray, finite: np.ndarray, window: int,
                  lo: float, scale: float, max_count: float) -> np.ndarray:
    """Windows ``(n, 2, window)``: scaled trace and spike channel, fully finite ones only."""
    rows = traces.shape[0] * traces.shape[1]
    x, _ = cut_windows(traces.reshape(rows, 1, -1), window)
    s, _ = cut_windows(counts.reshape(rows, 1, -1), window)
    ok, _ = cut_windows(finite.reshape(rows, 1, -1), window)
    keep = ok.all(axis=(1, 2))
    return np.concatenate([(x[keep] - lo) / scale, s[keep] / max_count], axis=1)


# --- the whole evaluation -------------------------------------------------------------------
@dataclass
class ConditionalStats:
    """Results of :func:`compute_conditional`: the tidy ``table`` (:data:`COLUMNS`) and the
    curves per dataset (``real`` first): ``sta`` (time_s + one column each, dF/F), ``psd``
    (frequency_hz + one column each, (dF/F)^2/Hz), ``amplitudes`` (dF/F per event) and ``nu``
    (% Hz^-1/2 per cell)."""

    table: pd.DataFrame
    sta: pd.DataFrame
    psd: pd.DataFrame
    amplitudes: dict[str, np.ndarray] = field(default_factory=dict)
    nu: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def _frames(seconds: float, frame_rate: float, least: int) -> int:
    return max(least, int(round(seconds * frame_rate)))


def _settings(settings: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(settings) - set(PARAMS))
    if unknown:
        raise CabenchError(f"unknown setting(s) {', '.join(unknown)}; valid: "
                           f"{', '.join(PARAMS)}")
    p = {k: float(settings.get(k, v[0])) for k, v in PARAMS.items()}
    for k, v in p.items():
        if not (np.isfinite(v) and v > 0):
            raise CabenchError(f"{k} must be a positive number of seconds, got {v}")
    return p


@dataclass
class _Pooled:
    """Per dataset, what the recordings contribute: event windows, summed periodograms, nu
    per cell, classifier windows."""

    windows: list[np.ndarray] = field(default_factory=list)
    psd_sum: np.ndarray | float = 0.0
    n_seg: int = 0
    nu: list[np.ndarray] = field(default_factory=list)
    c2st: list[np.ndarray] = field(default_factory=list)


def compute_conditional(
    real: Recordings,
    candidates: Mapping[str, Recordings],
    seed: int = 0,
    classifier: bool = True,
    device: str = "auto",
    c2st_steps: int = 300,
    log: Callable[[str], None] | None = None,
    **settings: float,
) -> ConditionalStats:
    """All statistics of the module docstring. ``real``: one TraceSet or a list of recordings
    at one frame rate (pooled: events, spectra segments, cells and classifier windows of all);
    each candidate: the same, one per real recording in the same order. ``settings``: keys of
    :data:`PARAMS` (s)."""
    from scipy.stats import ks_2samp

    from cabench.benchmark.metrics import wasserstein

    p = _settings(settings)
    say = log or (lambda _msg: None)
    reals, cands = _as_lists(real, candidates)
    many = len(reals) > 1
    counts = [_check_recording(r, {k: v[i] for k, v in cands.items()},
                               f"recording {i}: " if many else "")
              for i, r in enumerate(reals)]
    fr = reals[0].frame_rate
    for i, r in enumerate(reals):
        if not math.isclose(r.frame_rate, fr, rel_tol=RATE_MATCH):
            raise CabenchError(f"real recording {i} is at {r.frame_rate:g} Hz but recording 0 "
                               f"at {fr:g} Hz; resample them to one rate first")
    names = [REAL, *cands]
    n_pre = _frames(p["sta_before_s"], fr, 1)
    n_post = _frames(p["sta_after_s"], fr, 2)
    segment = _frames(p["psd_segment_s"], fr, 8)
    freqs = np.fft.rfftfreq(segment, 1.0 / fr)
    window = min(_frames(p["c2st_window_s"], fr, 8), max(r.n_frames for r in reals))
    real_vals = np.concatenate([r.traces[np.isfinite(r.traces)] for r in reals])
    lo, hi = float(real_vals.min()), float(real_vals.max())
    scale = hi - lo if hi > lo else 1.0
    max_count = max(1.0, max(float(c.max()) for c in counts))
    pooled = {k: _Pooled() for k in names}
    n_events = 0
    for i, r in enumerate(reals):
        data = {REAL: r.traces, **{k: v[i].traces for k, v in cands.items()}}
        finite = np.logical_and.reduce([np.isfinite(x) for x in data.values()])
        events = isolated_spikes(counts[i], fr, p["isolation_before_s"], p["isolation_after_s"],
                                 n_pre, n_post, finite)
        n_events += len(events)
        for name, x in data.items():
            acc = pooled[name]
            acc.windows.append(_event_windows(x, events, n_pre, n_post))
            _, psd_i, n_i = quiet_psd(x, counts[i], fr, p["quiet_s"], segment, finite)
            if n_i:
                acc.psd_sum = acc.psd_sum + psd_i * n_i
                acc.n_seg += n_i
            acc.nu.append(noise_level_nu(x, fr))
            if classifier and x.shape[-1] >= window:
                acc.c2st.append(_c2st_windows(x, counts[i], finite, window, lo, scale,
                                              max_count))
    say(f"{len(reals)} recording(s), {n_events} isolated single spikes, "
        f"{pooled[REAL].n_seg} spike-free segments of {segment} frames")
    sta, amps, psd, nus, desc = {}, {}, {}, {}, {}
    df_hz = freqs[1] - freqs[0] if freqs.size > 1 else math.nan
    for name in names:
        acc = pooled[name]
        w = np.concatenate(acc.windows)
        sta[name] = w.mean(0) if len(w) else np.full(n_pre + n_post + 1, np.nan)
        amps[name] = event_amplitudes(w, sta[name], n_pre)
        psd[name] = acc.psd_sum / acc.n_seg if acc.n_seg else np.full(freqs.size, np.nan)
        nus[name] = np.concatenate(acc.nu)
        shape = sta_shape(sta[name], fr, n_pre)
        ok_cells = np.isfinite(nus[name])
        desc[name] = dict(
            n_events=(n_events, n_events),
            sta_peak_dff=(shape["peak_dff"], n_events),
            sta_time_to_peak_s=(shape["time_to_peak_s"], n_events),
            sta_decay_s=(shape["decay_s"], n_events),
            amplitude_mean_dff=(float(np.mean(amps[name])) if len(w) else math.nan, len(w)),
            amplitude_sd_dff=(float(np.std(amps[name], ddof=1)) if len(w) > 1 else math.nan,
                              len(w)),
            noise_sd_dff=(float(np.sqrt(np.sum(psd[name][1:]) * df_hz)), acc.n_seg),
            nu_median=(float(np.median(nus[name][ok_cells])) if ok_cells.any() else math.nan,
                       int(ok_cells.sum())),
        )
    rows: list[dict[str, Any]] = []
    for name in names:
        for stat in _DESCRIPTIVE:
            v, n = desc[name][stat]
            rows.append(dict(candidate=name, statistic=stat, value=v,
                             reference=desc[REAL][stat][0], n=n))
    if classifier:
        from cabench.benchmark.learned.train import resolve_device

        dev = resolve_device(device)
        wins = {k: (np.concatenate(pooled[k].c2st) if pooled[k].c2st
                    else np.zeros((0, 2, window), np.float32)) for k in names}
        say(f"classifier tests on {dev}: {len(wins[REAL])} windows of {window} frames")
    for name in cands:
        r, c = sta[REAL], sta[name]
        both = np.isfinite(r) & np.isfinite(c)
        rmse = float(np.sqrt(np.mean((c[both] - r[both]) ** 2))) if both.any() else math.nan
        corr = (float(np.corrcoef(c[both], r[both])[0, 1])
                if both.sum() > 2 and np.std(c[both]) > 0 and np.std(r[both]) > 0 else math.nan)
        ks = (float(ks_2samp(amps[name], amps[REAL]).statistic)
              if len(amps[name]) and len(amps[REAL]) else math.nan)
        pos = (freqs > 0) & (psd[name] > 0) & (psd[REAL] > 0)
        log_rmse = (float(np.sqrt(np.mean(np.log10(psd[name][pos] / psd[REAL][pos]) ** 2)))
                    if pos.any() else math.nan)
        paired = np.isfinite(nus[name]) & np.isfinite(nus[REAL]) & (nus[REAL] > 0)
        rel = (float(np.median(np.abs(nus[name][paired] / nus[REAL][paired] - 1)))
               if paired.any() else math.nan)
        n_seg = pooled[name].n_seg
        dist = [("sta_rmse_dff", rmse, n_events), ("sta_correlation", corr, n_events),
                ("amplitude_wasserstein_dff", wasserstein(amps[name], amps[REAL]), n_events),
                ("amplitude_ks", ks, n_events), ("psd_log_rmse", log_rmse, n_seg),
                ("nu_wasserstein", wasserstein(nus[name], nus[REAL]), int(paired.sum())),
                ("nu_rel_error", rel, int(paired.sum()))]
        if classifier:
            res = conditional_c2st(wins[REAL], wins[name], seed=seed, device=dev,
                                   steps=c2st_steps)
            dist += [("c2st_auc", res["auc"], res["n_test"]),
                     ("c2st_accuracy", res["accuracy"], res["n_test"])]
        for stat, v, n in dist:
            rows.append(dict(candidate=name, statistic=stat, value=v, reference=math.nan, n=n))
    for row in rows:
        row.update(unit=UNITS[row["statistic"]], seed=seed)
    t = np.arange(-n_pre, n_post + 1) / fr
    return ConditionalStats(
        table=pd.DataFrame(rows, columns=list(COLUMNS)),
        sta=pd.DataFrame({"time_s": t, **sta}),
        psd=pd.DataFrame({"frequency_hz": freqs, **psd}),
        amplitudes=amps, nu=nus,
        params=dict(p, seed=seed, classifier=classifier, c2st_steps=c2st_steps,
                    c2st_window_frames=window, frame_rate_hz=fr, recordings=len(reals),
                    candidates=list(cands)),
    )


def evaluate_conditional(
    real: Recordings,
    candidates: Mapping[str, Recordings],
    output: str | Path | None = None,
    seed: int = 0,
    classifier: bool = True,
    device: str = "auto",
    c2st_steps: int = 300,
    figures: bool = True,
    log: Callable[[str], None] | None = None,
    **settings: float,
) -> pd.DataFrame:
    """Compare ``candidates`` (name -> TraceSet, or list of them, made for real's spikes) with
    the held-out ``real`` recordings (a TraceSet or a list at one frame rate, pooled); return
    the table (:data:`COLUMNS`) and, with ``output``, write metrics.csv, sta.csv, psd.csv,
    params.json and figures/ there (see the module docstring).

    ``settings``: keys of :data:`PARAMS` (s). ``classifier``: run the classifier tests
    (``c2st_steps`` Adam steps each) on ``device`` (auto, cpu or cuda).
    """
    stats = compute_conditional(real, candidates, seed=seed, classifier=classifier,
                                device=device, c2st_steps=c2st_steps, log=log, **settings)
    if output is not None:
        out = Path(output)
        if out.exists() and not out.is_dir():
            raise CabenchError(f"{out} is a file; give a folder for the evaluation")
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("metrics.csv", stats.table), ("sta.csv", stats.sta),
                            ("psd.csv", stats.psd)):
            with atomic_path(out / name, overwrite=True) as tmp:
                frame.to_csv(tmp, index=False)
        with atomic_path(out / "params.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(stats.params, indent=1, sort_keys=True))
        if figures:
            _figures(out / "figures", stats)
    return stats.table


# --- figures --------------------------------------------------------------------------------
def _colors(names: list[str]) -> dict[str, str]:
    cycle = ["tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    return {n: "black" if n == REAL else cycle[i % len(cycle)] for i, n in enumerate(names)}


def _hist(ax: Any, values: dict[str, np.ndarray], colors: dict[str, str], bins: int) -> None:
    finite = {k: np.asarray(v)[np.isfinite(v)] for k, v in values.items()}
    allv = np.concatenate([v for v in finite.values()] + [np.zeros(0)])
    if not allv.size:
        return
    lo, hi = float(allv.min()), float(allv.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    for k in sorted(finite, key=lambda n: n == REAL):  # real last, dashed, on top
        if finite[k].size:
            ax.hist(finite[k], edges, density=True, histtype="step", lw=1.4, color=colors[k],
                    ls="--" if k == REAL else "-", label=k)


def _figures(folder: Path, stats: ConditionalStats) -> list[Path]:
    from matplotlib.figure import Figure

    from cabench.generators.evaluate import _save

    folder.mkdir(parents=True, exist_ok=True)
    names = list(stats.amplitudes)
    colors = _colors(names)
    written = []
    n_events = int(stats.table.query("statistic == 'n_events'")["value"].iloc[0])

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for k in names:
        ax.plot(stats.sta["time_s"], stats.sta[k], color=colors[k], lw=1.4, label=k)
    ax.axvline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("time from spike frame (s)")
    ax.set_ylabel("dF/F (baseline subtracted)")
    ax.set_title(f"spike-triggered average of {n_events} isolated single spikes")
    ax.legend()
    fig.tight_layout()
    written.append(_save(fig, folder / "sta.png"))

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    _hist(ax, stats.amplitudes, colors, 30)
    ax.set_xlabel("single-spike amplitude (dF/F)")
    ax.set_ylabel("density")
    ax.set_title("amplitudes of isolated single spikes")
    ax.legend()
    fig.tight_layout()
    written.append(_save(fig, folder / "amplitudes.png"))

    fig = Figure(figsize=(10, 4))
    ax, ax2 = fig.subplots(1, 2)
    _hist(ax, stats.nu, colors, 15)
    ax.set_xlabel("noise level nu (% Hz^-1/2)")
    ax.set_ylabel("density")
    ax.set_title("noise level per cell")
    ax.legend()
    ref = stats.nu[REAL]
    for k in names[1:]:
        ax2.plot(ref, stats.nu[k], "o", ms=3, color=colors[k], label=k)
    finite = np.concatenate([v[np.isfinite(v)] for v in stats.nu.values()] + [np.zeros(0)])
    if finite.size:
        ax2.plot([finite.min(), finite.max()], [finite.min(), finite.max()], color="black",
                 lw=0.8, ls=":")
    ax2.set_xlabel("real nu (% Hz^-1/2)")
    ax2.set_ylabel("candidate nu (% Hz^-1/2)")
    ax2.set_title("per cell, paired")
    ax2.legend()
    fig.tight_layout()
    written.append(_save(fig, folder / "nu.png"))

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    f = stats.psd["frequency_hz"].to_numpy()
    for k in names:
        pk = stats.psd[k].to_numpy()
        ok = (f > 0) & np.isfinite(pk) & (pk > 0)
        if ok.any():
            ax.semilogy(f[ok], pk[ok], color=colors[k], lw=1.4, label=k)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power ((dF/F)² / Hz)")
    ax.set_title("noise spectrum of spike-free stretches")
    ax.legend()
    fig.tight_layout()
    written.append(_save(fig, folder / "psd.png"))
    return written
