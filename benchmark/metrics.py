"""Scores of inferred spikes against ground truth, and population statistics without it.

Independent of any harness: plain functions on numpy arrays. Units throughout:

- times (frame times, spike times, bin widths, kernel widths, tolerances) in seconds,
- frame rates in Hz, firing rates in Hz (spikes per second),
- per-frame spike estimates in expected spikes per frame (what CASCADE outputs; NaN where a
  method gives no estimate, e.g. edge padding),
- population arrays ``(cells, frames)`` of spike counts per frame (binary or integer; any
  non-negative weights are accepted).

Per cell (one cell, 1-D arrays)
-------------------------------
:func:`corr_25hz`
    Spikefinder's score: Pearson r between true spike counts and the estimate summed into
    40 ms bins. The estimate is integrated into the bins *exactly*: frame ``k`` stands for the
    interval between the midpoints to its neighbours (:func:`cabench.traceset.frame_edges`), its
    value is spread uniformly over that interval, and each bin receives the overlapping fraction.
    The bin grid starts at the first frame's lower edge and holds only complete bins. Bins that
    overlap a frame with a NaN estimate are left out of both series.
:func:`corr_smoothed`, :func:`error`, :func:`bias`
    CASCADE's benchmark measures. Both the true spikes and the estimate are smoothed with the same
    Gaussian (``sigma_s``, default 0.05 s) and integrated exactly over each frame's interval, so
    both series are in expected spikes per frame and each spike (or unit of estimate) keeps a total
    mass of 1. A true spike sits at its time; the estimate of frame ``k`` is a mass at the frame
    time. Smoothing both sides scores methods with sharp outputs (deconvolution) and methods with
    smooth outputs (CASCADE) on the same footing. Then ``corr`` is Pearson r,
    ``error = sum|pred - gt| / sum(gt)`` and ``bias = sum(pred - gt) / sum(gt)``. Frames with a NaN
    estimate are masked, and so are frames within ``3 * sigma_s`` of one (the missing estimate
    would have spilled into them).
:func:`van_rossum`, :func:`van_rossum_normalised`, :func:`van_rossum_matrix`
    van Rossum distance with a causal exponential kernel of time constant ``tau`` (s), on the same
    scale as ``elephant.spike_train_dissimilarity.van_rossum_distance`` (``sqrt(2)`` times the
    original paper's): ``D^2 = sum_ij k(t_i, t_j) + sum_ij k(s_i, s_j) - 2 sum_ij k(t_i, s_j)`` with
    ``k(a, b) = exp(-|a - b| / tau)``, so one isolated extra or missing spike costs ``D^2 = 1``.
    A pair is one merge of the signed events with a running exponential sum (O(n log n); rounding
    scales with the distance, identical trains give exactly 0). All pairs of N trains come from
    one sweep over all spikes in time order with a running sum per train (O(N^2 n) multiply-adds,
    vectorised over trains, no exponential per pair). Optional weights turn a train into weighted
    events (a per-frame estimate as masses at the frame times). The normalised score is
    ``D^2 / n_true``: the error per true spike, comparable across firing rates.
:func:`rate_error`
    ``(n_inferred - n_true) / n_true`` over the frames that have an estimate.
:func:`f1`
    One-to-one matching of spike times within ``tolerance_s`` (inclusive), precision, recall, F1.
    The matching is greedy in time order, which on a line with equal windows is a maximum
    matching.
:func:`score_cell`
    All of the above for one cell, as a dict of floats.

Population statistics (data without ground truth: simulated or GAN populations)
-------------------------------------------------------------------------------
:func:`firing_rates` (Hz per neuron), :func:`pairwise_correlations` (Pearson r of spike counts in
0.5 s bins, per neuron pair), :func:`pairwise_van_rossum` (tau 1 s, per neuron pair),
:func:`kl_divergence` (CalciumGAN's KL(real || generated) of 30-bin histograms on common edges,
with probability ``KL_EPSILON`` = 1e-6 added to every bin),
:func:`wasserstein` and :func:`compare_populations` (a table of both per statistic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numba as nb
import numpy as np

from cabench.errors import CabenchError
from cabench.traceset import frame_edges

__all__ = [
    "CELL_PARAMS",
    "F1Score",
    "KL_EPSILON",
    "bias",
    "bin_estimate",
    "bin_spikes",
    "compare_populations",
    "compare_values",
    "corr_25hz",
    "corr_smoothed",
    "error",
    "f1",
    "firing_rates",
    "kl_divergence",
    "pairwise_correlations",
    "pairwise_van_rossum",
    "population_statistics",
    "rate_error",
    "score_cell",
    "smooth_events",
    "van_rossum",
    "van_rossum_matrix",
    "van_rossum_normalised",
    "wasserstein",
]

#: Parameters of :func:`score_cell`, their defaults and meaning.
CELL_PARAMS: dict[str, tuple[float, str]] = {
    "bin_s": (0.04, "bin width (s) of corr_25hz"),
    "sigma_s": (0.05, "Gaussian sigma (s) of corr_smoothed, error and bias"),
    "vr_tau_s": (0.1, "van Rossum time constant (s) of the per-cell distance"),
    "tolerance_s": (0.05, "largest |time difference| (s) of a matched spike pair for f1"),
}

#: Probability added to every histogram bin of :func:`kl_divergence` before renormalising.
KL_EPSILON = 1e-6

# Block length of the van Rossum sweep, in units of tau: exp(+-r) stays within e^30 ~ 1e13.
_VR_BLOCK = 30.0


# --- helpers ------------------------------------------------------------------------------------
def _times(x: Any) -> np.ndarray:
    """Finite spike times as a sorted float64 array (NaN times, as in some .mat files, dropped)."""
    t = np.asarray(x, dtype=np.float64).ravel()
    t = t[np.isfinite(t)]
    return np.sort(t)


def _frame_times(frame_times: Any, n_frames: int, frame_rate: float | None = None) -> np.ndarray:
    if frame_times is None:
        if frame_rate is None or not frame_rate > 0:
            raise CabenchError("give frame_times (s) or a positive frame_rate (Hz)")
        return np.arange(n_frames) / float(frame_rate)
    ft = np.asarray(frame_times, dtype=np.float64).ravel()
    if ft.size != n_frames:
        raise CabenchError(f"{ft.size} frame times for an estimate of {n_frames} frames")
    if n_frames > 1 and not np.all(np.diff(ft) > 0):
        raise CabenchError("frame times must be strictly increasing")
    return ft


def _estimate(estimate: Any) -> np.ndarray:
    e = np.asarray(estimate, dtype=np.float64).ravel()
    if e.size == 0:
        raise CabenchError("empty estimate")
    return e


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN with fewer than two points or a constant series."""
    if a.size < 2:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


# --- corr_25hz: exact binning -------------------------------------------------------------------
def bin_estimate(
    estimate: Any, frame_times: Any, bin_s: float = 0.04
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate a per-frame estimate exactly into bins of ``bin_s`` seconds.

    Frame ``k`` covers ``[edges[k], edges[k + 1])`` with edges halfway between frame times (s);
    its value (expected spikes in the frame) is spread uniformly over that interval and each bin
    receives the overlapping fraction. The grid starts at ``edges[0]`` and holds only complete
    bins.

    Returns ``(bin_edges, values, valid)``: bin edges (s, ``(bins + 1,)``), expected spikes per bin,
    and a boolean mask that is False for bins overlapping a frame with a non-finite estimate.
    """
    e = _estimate(estimate)
    edges = frame_edges(_frame_times(frame_times, e.size))
    if not bin_s > 0:
        raise CabenchError(f"bin_s must be positive, got {bin_s}")
    span = edges[-1] - edges[0]
    n_bins = int(math.floor(span / bin_s + 1e-9))
    bin_edges = edges[0] + bin_s * np.arange(n_bins + 1)
    bad = ~np.isfinite(e)
    cum = np.concatenate([[0.0], np.cumsum(np.where(bad, 0.0, e))])
    values = np.diff(np.interp(bin_edges, edges, cum))  # the integral is piecewise linear
    # frames overlapping [a, b): edges[k] < b and edges[k + 1] > a (overlaps below tol ignored)
    tol = 1e-9 * bin_s
    first = np.searchsorted(edges, bin_edges[:-1] + tol, side="right") - 1
    last = np.searchsorted(edges, bin_edges[1:] - tol, side="left") - 1
    first = np.clip(first, 0, e.size - 1)
    last = np.clip(last, 0, e.size - 1)
    n_bad = np.concatenate([[0], np.cumsum(bad)])
    valid = n_bad[last + 1] - n_bad[first] == 0
    return bin_edges, values, valid


def bin_spikes(spike_times: Any, bin_edges: np.ndarray) -> np.ndarray:
    """Spike counts in ``[bin_edges[i], bin_edges[i + 1])`` (s); spikes outside are ignored."""
    t = _times(spike_times)
    n_bins = len(bin_edges) - 1
    idx = np.searchsorted(bin_edges, t, side="right") - 1
    idx = idx[(idx >= 0) & (idx < n_bins)]
    return np.bincount(idx, minlength=n_bins).astype(np.float64)


def corr_25hz(estimate: Any, frame_times: Any, true_spike_times: Any, bin_s: float = 0.04) -> float:
    """Pearson r of true spike counts and the estimate integrated into ``bin_s``-second bins.

    ``estimate``: expected spikes per frame, NaN where missing; ``frame_times`` and
    ``true_spike_times`` in seconds on the same clock. See :func:`bin_estimate` for the exact
    binning and the masking of bins that overlap NaN frames. NaN if fewer than two valid bins or
    either series is constant.
    """
    bin_edges, values, valid = bin_estimate(estimate, frame_times, bin_s)
    counts = bin_spikes(true_spike_times, bin_edges)
    return _pearson(values[valid], counts[valid])


# --- corr_smoothed, error, bias: Gaussian smoothing ----------------------------------------------
@nb.njit(cache=True)
def _gauss_into_frames(times, weights, edges, sigma, out):
    inv = 1.0 / (sigma * math.sqrt(2.0))
    reach = 8.5 * sigma  # Gaussian mass beyond 8.5 sigma is below 1e-16
    last = edges.size - 1
    for n in range(times.size):
        t = times[n]
        w = weights[n]
        i0 = max(np.searchsorted(edges, t - reach, side="right") - 1, 0)
        i1 = min(np.searchsorted(edges, t + reach, side="left"), last)
        prev = 0.5 * math.erfc(-(edges[i0] - t) * inv)
        for i in range(i0, i1):
            cur = 0.5 * math.erfc(-(edges[i + 1] - t) * inv)
            out[i] += w * (cur - prev)
            prev = cur


def smooth_events(
    times: Any, frame_times: Any, sigma_s: float = 0.05, weights: Any = None
) -> np.ndarray:
    """Events (s, optional weights) smoothed by a Gaussian of ``sigma_s`` (s), per frame.

    Each event's Gaussian (area = its weight, 1 by default) is integrated exactly over each
    frame's interval (edges halfway between frame times), so the result is in expected spikes per
    frame. Mass outside the recording is lost; events outside it still spill into it.
    """
    ft = np.asarray(frame_times, dtype=np.float64).ravel()
    edges = frame_edges(ft)
    t = np.asarray(times, dtype=np.float64).ravel()
    w = np.ones_like(t) if weights is None else np.asarray(weights, np.float64).ravel()
    keep = np.isfinite(t) & np.isfinite(w) & (w != 0)
    out = np.zeros(ft.size)
    if not sigma_s > 0:
        raise CabenchError(f"sigma_s must be positive, got {sigma_s}")
    _gauss_into_frames(t[keep], w[keep], edges, float(sigma_s), out)
    return out


def _smoothed_pair(
    estimate: Any, frame_times: Any, true_spike_times: Any, sigma_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed estimate and smoothed truth on the valid frames (see the module docstring)."""
    e = _estimate(estimate)
    ft = _frame_times(frame_times, e.size)
    bad = ~np.isfinite(e)
    pred = smooth_events(ft, ft, sigma_s, np.where(bad, 0.0, e))
    gt = smooth_events(_times(true_spike_times), ft, sigma_s)
    valid = ~bad
    if bad.any():
        nan_t = ft[bad]
        j = np.searchsorted(nan_t, ft)
        left = np.abs(ft - nan_t[np.clip(j - 1, 0, nan_t.size - 1)])
        right = np.abs(nan_t[np.clip(j, 0, nan_t.size - 1)] - ft)
        valid &= np.minimum(left, right) > 3.0 * sigma_s
    return pred[valid], gt[valid]


def corr_smoothed(
    estimate: Any, frame_times: Any, true_spike_times: Any, sigma_s: float = 0.05
) -> float:
    """Pearson r of the Gaussian-smoothed estimate and smoothed true spikes (CASCADE's corr).

    Both smoothed with sigma ``sigma_s`` (s) and evaluated per frame (expected spikes per frame);
    NaN frames and frames within ``3 * sigma_s`` of them are masked.
    """
    pred, gt = _smoothed_pair(estimate, frame_times, true_spike_times, sigma_s)
    return _pearson(pred, gt)


def error(estimate: Any, frame_times: Any, true_spike_times: Any, sigma_s: float = 0.05) -> float:
    """CASCADE's error ``sum|pred - gt| / sum(gt)`` on smoothed series (dimensionless).

    Smoothing and masking as in :func:`corr_smoothed`; NaN if the truth has no mass there.
    """
    pred, gt = _smoothed_pair(estimate, frame_times, true_spike_times, sigma_s)
    total = gt.sum()
    return float(np.abs(pred - gt).sum() / total) if total > 0 else float("nan")


def bias(estimate: Any, frame_times: Any, true_spike_times: Any, sigma_s: float = 0.05) -> float:
    """CASCADE's bias ``sum(pred - gt) / sum(gt)`` on smoothed series (dimensionless).

    Smoothing and masking as in :func:`corr_smoothed`; NaN if the truth has no mass there.
    """
    pred, gt = _smoothed_pair(estimate, frame_times, true_spike_times, sigma_s)
    total = gt.sum()
    return float((pred - gt).sum() / total) if total > 0 else float("nan")


# --- counts, rate error, F1 ---------------------------------------------------------------------
def _valid_true_spikes(e: np.ndarray, ft: np.ndarray, true_spike_times: Any) -> np.ndarray:
    """True spike times inside the interval of a frame with a finite estimate."""
    t = _times(true_spike_times)
    edges = frame_edges(ft)
    k = np.searchsorted(edges, t, side="right") - 1
    inside = (k >= 0) & (k < e.size)
    ok = np.zeros(t.size, bool)
    ok[inside] = np.isfinite(e[k[inside]])
    return t[ok]


def rate_error(estimate: Any, frame_times: Any, true_spike_times: Any) -> float:
    """Relative error of the mean firing rate, ``(n_inferred - n_true) / n_true``.

    ``n_inferred`` is the sum of the per-frame estimate (expected spikes per frame) over frames with
    a finite estimate; ``n_true`` counts true spikes (s) inside those frames' intervals. Equal to
    the relative error of the rate in Hz, as both cover the same time. NaN if ``n_true`` is 0.
    """
    e = _estimate(estimate)
    ft = _frame_times(frame_times, e.size)
    n_true = _valid_true_spikes(e, ft, true_spike_times).size
    n_inf = float(np.nansum(np.where(np.isfinite(e), e, np.nan)))
    return (n_inf - n_true) / n_true if n_true > 0 else float("nan")


class F1Score(NamedTuple):
    """Result of :func:`f1`: precision and recall are NaN when their denominator is 0."""

    precision: float
    recall: float
    f1: float
    n_matched: int
    n_true: int
    n_inferred: int


@nb.njit(cache=True)
def _n_matched(t, s, tol):
    m = 0
    j = 0
    for i in range(t.size):
        while j < s.size and s[j] < t[i] - tol:
            j += 1
        if j < s.size and s[j] <= t[i] + tol:
            m += 1
            j += 1
    return m


def f1(true_times: Any, inferred_times: Any, tolerance_s: float = 0.05) -> F1Score:
    """Match true and inferred spike times (s) one to one within ``tolerance_s`` (inclusive).

    The matching has maximum cardinality: true spikes are taken in time order and each takes the
    earliest unmatched inferred spike at or after ``t - tolerance_s``, if that lies within
    ``t + tolerance_s``. As all tolerance windows have the same length, this greedy choice is
    optimal (an exchange argument: an inferred spike skipped because it lies before
    ``t - tolerance_s`` is out of reach of every later true spike too), i.e. it equals a maximum
    bipartite matching on the line. Precision = matched / inferred, recall = matched / true,
    F1 = 2 matched / (true + inferred) (NaN only if both are empty).
    """
    t, s = _times(true_times), _times(inferred_times)
    if not tolerance_s >= 0:
        raise CabenchError(f"tolerance_s must be >= 0, got {tolerance_s}")
    m = int(_n_matched(t, s, float(tolerance_s))) if t.size and s.size else 0
    nt, ns = t.size, s.size
    nan = float("nan")
    return F1Score(
        precision=m / ns if ns else nan,
        recall=m / nt if nt else nan,
        f1=2.0 * m / (nt + ns) if nt + ns else nan,
        n_matched=m,
        n_true=nt,
        n_inferred=ns,
    )


# --- van Rossum ---------------------------------------------------------------------------------
@nb.njit(cache=True)
def _vr_sweep(lab, w, blk, ep, em, block_len, u0, u1, L):
    """Cross sums of trains ``u0 <= u < u1`` against all trains, in one sweep over all events.

    Events are sorted by time. Adds ``L[v, u] = sum_{x in v} w_x sum_{y in u, y before x} w_y
    exp(-(x - y) / tau)`` ("before" in the sort order, so each coincident pair counts once). Times
    are handled as ``r = t / tau`` split into blocks of ``block_len``: ``ep = exp(r - block *
    block_len)`` and ``em = 1 / ep``; the running sums ``acc[u]`` are rescaled when the sweep
    enters a new block, so no exponential is needed per pair of trains.
    """
    m = u1 - u0
    acc = np.zeros(m)  # acc[u] belongs to train u0 + u
    cur = blk[0] if blk.size else 0
    for k in range(lab.size):
        b = blk[k]
        if b != cur:
            f = math.exp(-block_len * (b - cur))
            for u in range(m):
                acc[u] *= f
            cur = b
        v = lab[k]
        cw = w[k] * em[k]
        row = L[v, u0:u1]
        for u in range(m):  # loops from 0 vectorise (no negative-index checks)
            row[u] += cw * acc[u]
        if u0 <= v < u1:
            acc[v - u0] += w[k] * ep[k]


@nb.njit(cache=True, parallel=True)
def _vr_sweep_parallel(lab, w, blk, ep, em, block_len, n_chunks, L):
    """:func:`_vr_sweep` over ``n_chunks`` ranges of trains in parallel (disjoint columns)."""
    n = L.shape[0]
    size = (n + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        _vr_sweep(lab, w, blk, ep, em, block_len, c * size, min(n, (c + 1) * size), L)


def _trains_and_weights(
    trains: Sequence[Any], weights: Sequence[Any] | None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ts, ws = [], []
    for i, tr in enumerate(trains):
        t = np.asarray(tr, dtype=np.float64).ravel()
        w = np.ones_like(t) if weights is None or weights[i] is None else (
            np.asarray(weights[i], dtype=np.float64).ravel())
        if w.size != t.size:
            raise CabenchError(f"train {i}: {w.size} weights for {t.size} spike times")
        keep = np.isfinite(t) & np.isfinite(w)
        ts.append(t[keep])
        ws.append(w[keep])
    return ts, ws


def _vr_squared(
    trains: Sequence[Any], tau: float, weights: Sequence[Any] | None = None
) -> np.ndarray:
    """Squared van Rossum distances (elephant's scale) of all pairs, ``(N, N)``."""
    tau = float(tau)
    if not tau > 0:
        raise CabenchError(f"the van Rossum time constant must be positive, got {tau}")
    ts, ws = _trains_and_weights(trains, weights)
    n = len(ts)
    if n == 0:
        return np.zeros((0, 0))
    total = np.array([w.sum() for w in ws])
    if math.isinf(tau):
        d2 = (total[:, None] - total[None, :]) ** 2
        np.fill_diagonal(d2, 0.0)
        return d2
    flat = np.concatenate(ts)
    w = np.concatenate(ws)
    lab = np.repeat(np.arange(n, dtype=np.int64), [t.size for t in ts])
    order = np.argsort(flat)  # the order of ties does not matter: each pair counts once
    flat, w, lab = flat[order], w[order], lab[order]
    r = (flat - flat[0]) / tau if flat.size else flat
    blk = np.floor(r / _VR_BLOCK).astype(np.int64)
    r -= blk * _VR_BLOCK
    ep = np.exp(r)
    L = np.zeros((n, n))
    n_chunks = min(nb.get_num_threads(), n // 256)  # chunks pay for large N only
    if n_chunks > 1:
        _vr_sweep_parallel(lab, w, blk, ep, 1.0 / ep, _VR_BLOCK, n_chunks, L)
    else:
        _vr_sweep(lab, w, blk, ep, 1.0 / ep, _VR_BLOCK, 0, n, L)
    sq = np.bincount(lab, weights=w * w, minlength=n)
    own = sq + 2.0 * np.diag(L)  # sum_ij k(t_i, t_j) of each train
    cross = L + L.T
    d2 = own[:, None] + own[None, :] - 2.0 * cross
    np.fill_diagonal(d2, 0.0)
    return np.maximum(d2, 0.0)


@nb.njit(cache=True)
def _vr_pair_squared(t1, w1, t2, w2, inv_tau):
    """Squared distance of two sorted weighted trains in one merge of the signed events.

    With the events of ``t1`` weighted ``+w`` and those of ``t2`` ``-w``, merged in time order,
    ``D^2 = sum_b w_b^2 + 2 sum_b w_b m_b`` where ``m_b = sum_{a<b} w_a exp(-(x_b - x_a) / tau)``
    follows ``m_b = (m_{b-1} + w_{b-1}) exp(-(x_b - x_{b-1}) / tau)``. ``m`` tracks the difference
    of the two filtered trains, so rounding scales with the distance itself (identical trains give
    exactly 0), not with the trains' own norms.
    """
    n1, n2 = t1.size, t2.size
    i = 0
    j = 0
    m = 0.0
    acc = 0.0
    sq = 0.0
    x_prev = 0.0
    w_prev = 0.0
    first = True
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and t1[i] <= t2[j]):
            x = t1[i]
            w = w1[i]
            i += 1
        else:
            x = t2[j]
            w = -w2[j]
            j += 1
        if first:
            first = False
        else:
            m = (m + w_prev) * math.exp((x_prev - x) * inv_tau)
        acc += w * m
        sq += w * w
        x_prev = x
        w_prev = w
    return sq + 2.0 * acc


def _sorted_weighted(t: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if t.size > 1 and np.any(t[1:] < t[:-1]):
        order = np.argsort(t, kind="stable")
        return t[order], w[order]
    return t, w


def _vr_pair(t1: Any, t2: Any, tau: float, weights1: Any, weights2: Any) -> tuple[float, float]:
    """Squared distance (elephant's scale) and the total weight of the first train."""
    tau = float(tau)
    if not tau > 0:
        raise CabenchError(f"the van Rossum time constant must be positive, got {tau}")
    (a, b), (wa, wb) = _trains_and_weights([t1, t2], [weights1, weights2])
    n1 = float(wa.sum())
    if math.isinf(tau):
        return (n1 - float(wb.sum())) ** 2, n1
    a, wa = _sorted_weighted(a, wa)
    b, wb = _sorted_weighted(b, wb)
    return max(float(_vr_pair_squared(a, wa, b, wb, 1.0 / tau)), 0.0), n1


def van_rossum(
    t1: Any, t2: Any, tau: float, weights1: Any = None, weights2: Any = None
) -> float:
    """van Rossum distance between two spike trains (times in s), kernel time constant ``tau`` (s).

    Same scale as elephant's ``van_rossum_distance``: a single spike against an empty train gives
    1 (divide by ``sqrt(2)`` for the original paper's normalisation). ``tau = inf`` gives the
    difference of spike counts. Optional weights make weighted events (e.g. a per-frame estimate
    at the frame times). Spikes need not be sorted; NaN times are dropped. O(n log n), O(n) for
    sorted trains.
    """
    return math.sqrt(_vr_pair(t1, t2, tau, weights1, weights2)[0])


def van_rossum_normalised(
    t1: Any, t2: Any, tau: float, weights1: Any = None, weights2: Any = None
) -> float:
    """Squared van Rossum distance per spike of the first (true) train: ``D^2 / n1``.

    ``t1`` holds the true spikes (s), ``t2`` the inferred ones; ``tau`` in s. On elephant's scale
    an isolated missed or extra spike adds 1 to ``D^2`` and a spike displaced by ``dt`` adds
    ``2 (1 - exp(-|dt| / tau))``, so the value is the error per true spike: about the fraction of
    missed plus extra spikes when spikes are further apart than ``tau``, and independent of the
    firing rate for a given timing jitter or miss fraction (while ``rate * tau`` is small). 0 is
    perfect. ``n1`` is the sum of ``weights1`` if given. NaN if the first train is empty.
    """
    d2, n1 = _vr_pair(t1, t2, tau, weights1, weights2)
    return d2 / n1 if n1 > 0 else float("nan")


def van_rossum_matrix(
    trains: Sequence[Any], tau: float, weights: Sequence[Any] | None = None
) -> np.ndarray:
    """van Rossum distances (elephant's scale) between all pairs of ``trains``, ``(N, N)``.

    ``trains``: a sequence of 1-D arrays of spike times (s), any order; ``tau`` in s; optional
    per-train weights. One sweep over all spikes sorted by time keeps a running exponential sum per
    train, so the cost is O(N^2 n) multiply-adds without any exponential per pair.
    """
    return np.sqrt(_vr_squared(trains, tau, weights))


# --- one cell, all scores -----------------------------------------------------------------------
def score_cell(
    estimate: Any,
    frame_times: Any,
    true_spike_times: Any,
    frame_rate: float | None = None,
    inferred_spike_times: Any = None,
    **params: float,
) -> dict[str, float]:
    """All per-cell scores of one cell's estimate against its true spikes.

    ``estimate``: expected spikes per frame (NaN where missing); ``frame_times`` (s), or None for
    ``k / frame_rate`` (Hz); ``true_spike_times`` (s); ``inferred_spike_times`` (s), optional, for
    spike-time scores. ``params``: see :data:`CELL_PARAMS` (``bin_s``, ``sigma_s``, ``vr_tau_s``,
    ``tolerance_s``); unknown names are refused.

    Keys: ``corr_25hz``, ``corr_smoothed``, ``error``, ``bias``, ``rate_error``, ``van_rossum``
    (:func:`van_rossum_normalised` of the true spikes against the estimate as weighted events at
    the frame times, over frames with a finite estimate), ``n_true`` and ``n_inferred`` (spikes in
    those frames, true and summed estimate), and from ``inferred_spike_times`` (NaN without them):
    ``van_rossum_spikes`` (normalised, against the inferred times), ``precision``, ``recall``,
    ``f1``.
    """
    unknown = sorted(set(params) - set(CELL_PARAMS))
    if unknown:
        raise CabenchError(
            f"unknown metric parameter(s) {', '.join(unknown)}; valid: {', '.join(CELL_PARAMS)}"
        )
    p = {k: float(params.get(k, v[0])) for k, v in CELL_PARAMS.items()}
    e = _estimate(estimate)
    ft = _frame_times(frame_times, e.size, frame_rate)
    true_t = _times(true_spike_times)
    ok = np.isfinite(e)
    valid_true = _valid_true_spikes(e, ft, true_t)
    out: dict[str, float] = {
        "corr_25hz": corr_25hz(e, ft, true_t, p["bin_s"]),
        "corr_smoothed": corr_smoothed(e, ft, true_t, p["sigma_s"]),
        "error": error(e, ft, true_t, p["sigma_s"]),
        "bias": bias(e, ft, true_t, p["sigma_s"]),
        "rate_error": rate_error(e, ft, true_t),
        "van_rossum": van_rossum_normalised(valid_true, ft[ok], p["vr_tau_s"], None, e[ok]),
        "n_true": float(valid_true.size),
        "n_inferred": float(e[ok].sum()),
    }
    nan = float("nan")
    if inferred_spike_times is None:
        out.update(van_rossum_spikes=nan, precision=nan, recall=nan, f1=nan)
    else:
        inf_t = _times(inferred_spike_times)
        m = f1(true_t, inf_t, p["tolerance_s"])
        out.update(
            van_rossum_spikes=van_rossum_normalised(true_t, inf_t, p["vr_tau_s"]),
            precision=m.precision,
            recall=m.recall,
            f1=m.f1,
        )
    return out


# --- population statistics ----------------------------------------------------------------------
class _Population(NamedTuple):
    times: list[np.ndarray]  # per neuron, s
    weights: list[np.ndarray]  # spikes at each time
    duration: float  # s; the recording is [0, duration)
    counts: np.ndarray | None  # (cells, frames) when given as an array
    frame_rate: float | None


def _population(data: Any, frame_rate: float | None, duration: float | None) -> _Population:
    """Spike trains from a ``(cells, frames)`` count array or a sequence of spike-time arrays."""
    if isinstance(data, np.ndarray) and data.dtype != object:
        if data.ndim != 2:
            raise CabenchError(f"expected spike counts (cells, frames), got shape {data.shape}")
        if frame_rate is None or not frame_rate > 0:
            raise CabenchError("a (cells, frames) array needs a positive frame_rate (Hz)")
        counts = np.asarray(data, dtype=np.float64)
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise CabenchError("spike counts must be finite and non-negative")
        times, weights = [], []
        for row in counts:
            k = np.flatnonzero(row)
            times.append(k / float(frame_rate))
            weights.append(row[k])
        return _Population(times, weights, counts.shape[1] / float(frame_rate), counts,
                           float(frame_rate))
    if duration is None or not duration > 0:
        raise CabenchError("spike-time lists need a positive duration (s); the recording is "
                           "taken to be [0, duration)")
    times = []
    for tr in data:
        t = _times(tr)
        times.append(t[(t >= 0) & (t < duration)])
    return _Population(times, [np.ones_like(t) for t in times], float(duration), None, None)


def _bin_counts(pop: _Population, bin_s: float) -> np.ndarray:
    """Spike counts in complete bins of ``bin_s`` s from time 0, ``(cells, bins)``."""
    if not bin_s > 0:
        raise CabenchError(f"bin_s must be positive, got {bin_s}")
    n_bins = int(math.floor(pop.duration / bin_s + 1e-9))
    out = np.zeros((len(pop.times), n_bins))
    for i, (t, w) in enumerate(zip(pop.times, pop.weights, strict=True)):
        idx = np.floor(t / bin_s + 1e-9).astype(np.int64)
        ok = idx < n_bins
        out[i] = np.bincount(idx[ok], weights=w[ok], minlength=n_bins)
    return out


def _upper(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], k=1)]


def firing_rates(
    data: Any, frame_rate: float | None = None, duration: float | None = None
) -> np.ndarray:
    """Mean firing rate of each neuron (Hz).

    ``data``: spike counts ``(cells, frames)`` with ``frame_rate`` (Hz), or a sequence of spike-time
    arrays (s) with ``duration`` (s; recording ``[0, duration)``).
    """
    pop = _population(data, frame_rate, duration)
    return np.array([w.sum() for w in pop.weights]) / pop.duration


def pairwise_correlations(
    data: Any,
    frame_rate: float | None = None,
    duration: float | None = None,
    bin_s: float = 0.5,
) -> np.ndarray:
    """Pearson r of spike counts in ``bin_s``-second bins for every neuron pair ``i < j``.

    Input as in :func:`firing_rates`; bins start at time 0 and only complete bins count (frame
    ``k`` of an array lies at ``k / frame_rate``). Condensed order (as ``scipy``'s ``pdist``);
    NaN for pairs with a neuron of constant count.
    """
    counts = _bin_counts(_population(data, frame_rate, duration), bin_s)
    n = counts.shape[0]
    if counts.shape[1] < 2:
        return np.full(n * (n - 1) // 2, np.nan)
    c = counts - counts.mean(axis=1, keepdims=True)
    norm = np.sqrt((c * c).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (c @ c.T) / np.outer(norm, norm)
    r[~np.isfinite(r)] = np.nan
    return _upper(np.clip(r, -1.0, 1.0))


def pairwise_van_rossum(
    data: Any,
    frame_rate: float | None = None,
    duration: float | None = None,
    tau_s: float = 1.0,
) -> np.ndarray:
    """van Rossum distances (elephant's scale, time constant ``tau_s`` s) of neuron pairs ``i < j``.

    Input as in :func:`firing_rates`; array spikes sit at the frame times ``k / frame_rate``, with
    counts above 1 as weights. Condensed order as :func:`pairwise_correlations`.
    """
    pop = _population(data, frame_rate, duration)
    return _upper(van_rossum_matrix(pop.times, tau_s, pop.weights))


def population_statistics(
    data: Any,
    frame_rate: float | None = None,
    duration: float | None = None,
    bin_s: float = 0.5,
    tau_s: float = 1.0,
) -> dict[str, np.ndarray]:
    """``firing_rate`` (Hz, per neuron), ``correlation`` and ``van_rossum`` (per neuron pair)."""
    return {
        "firing_rate": firing_rates(data, frame_rate, duration),
        "correlation": pairwise_correlations(data, frame_rate, duration, bin_s),
        "van_rossum": pairwise_van_rossum(data, frame_rate, duration, tau_s),
    }


def _finite(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def kl_divergence(
    real: Any, generated: Any, bins: int = 30, epsilon: float = KL_EPSILON
) -> float:
    """KL(real || generated) in nats of ``bins``-bin histograms (CalciumGAN's measure).

    Both samples share ``bins`` equal bins spanning the union of their ranges (non-finite values
    dropped). ``epsilon`` (default :data:`KL_EPSILON` = 1e-6) is added to every bin's probability
    before renormalising, so bins that are empty in ``generated`` give a large but finite penalty
    (at most about ``log(1 / epsilon)`` = 13.8 nats in total) and identical samples give exactly 0.
    NaN if either sample is empty.
    """
    p, q = _finite(real), _finite(generated)
    if p.size == 0 or q.size == 0:
        return float("nan")
    lo = min(p.min(), q.min())
    hi = max(p.max(), q.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, int(bins) + 1)
    hp = np.histogram(p, edges)[0] / p.size + epsilon
    hq = np.histogram(q, edges)[0] / q.size + epsilon
    hp /= hp.sum()
    hq /= hq.sum()
    return float(max(np.sum(hp * np.log(hp / hq)), 0.0))


def wasserstein(real: Any, generated: Any) -> float:
    """1-D Wasserstein (earth mover's) distance of two samples, in their unit; NaN if one is
    empty."""
    from scipy.stats import wasserstein_distance

    p, q = _finite(real), _finite(generated)
    if p.size == 0 or q.size == 0:
        return float("nan")
    return float(wasserstein_distance(p, q))


def compare_values(
    real: Any, generated: Any, bins: int = 30, epsilon: float = KL_EPSILON
) -> dict[str, float]:
    """``kl``, ``wasserstein``, ``n_real`` and ``n_generated`` (finite values) of two samples."""
    return {
        "kl": kl_divergence(real, generated, bins, epsilon),
        "wasserstein": wasserstein(real, generated),
        "n_real": int(_finite(real).size),
        "n_generated": int(_finite(generated).size),
    }


def compare_populations(
    real: Any,
    generated: Any,
    frame_rate: float | None = None,
    *,
    duration: float | tuple[float, float] | None = None,
    bin_s: float = 0.5,
    tau_s: float = 1.0,
    bins: int = 30,
    epsilon: float = KL_EPSILON,
):
    """Compare two populations by the distributions of their statistics.

    ``real``, ``generated``: spike counts ``(cells, frames)`` at ``frame_rate`` (Hz) or sequences of
    spike-time arrays (s) with ``duration`` (s; one value or ``(real, generated)``). Statistics:
    ``firing_rate`` (Hz per neuron), ``correlation`` (spike counts in ``bin_s`` bins, per pair),
    ``van_rossum`` (time constant ``tau_s``, per pair). Returns a pandas DataFrame indexed by
    statistic with columns ``kl`` (KL(real || generated), :func:`kl_divergence`),
    ``wasserstein``, ``n_real`` and ``n_generated`` (finite values compared).
    """
    import pandas as pd

    d_real, d_gen = duration if isinstance(duration, tuple) else (duration, duration)
    s_real = population_statistics(real, frame_rate, d_real, bin_s, tau_s)
    s_gen = population_statistics(generated, frame_rate, d_gen, bin_s, tau_s)
    rows = {name: compare_values(s_real[name], s_gen[name], bins, epsilon) for name in s_real}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "statistic"
    return df[["kl", "wasserstein", "n_real", "n_generated"]]
