"""Figures of a benchmark suite run: score distributions, noise dependence, example traces.

Plain functions on the tidy scores table written by :mod:`cabench.benchmark.suite` (one row per
dataset, recording, cell, method and metric; columns ``dataset``, ``source``, ``recording``,
``cell``, ``noise_level``, ``method``, ``metric``, ``value``, ``seconds``, ``status``). Only rows
with status ``ok`` and a finite value are plotted. Units: noise level nu in % Hz^-1/2 (CASCADE's),
times in seconds, traces as dF/F fractions, spike estimates in expected spikes per frame; the
scores are unitless (correlations, ratios, fractions, van Rossum D^2 per true spike).

Only matplotlib's object-oriented API is used (``matplotlib.figure.Figure`` and its Agg canvas
through ``savefig``), never pyplot, so nothing touches global backend state and figures are
freed with their last reference. Each PNG is written atomically
(:func:`cabench.traceset.atomic_path`). A method keeps one colour in every figure
(:func:`method_colors`: tab10 in order of first appearance).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cabench.traceset import atomic_path

__all__ = [
    "DPI",
    "METRIC_LABELS",
    "busiest_window",
    "example_traces",
    "method_colors",
    "metric_boxplots",
    "performance_vs_noise",
    "write_figures",
]

DPI = 110
"""Resolution (dots per inch) of the PNGs."""

METRIC_LABELS: dict[str, str] = {
    "corr_25hz": "Pearson r, binned counts",
    "corr_smoothed": "Pearson r, smoothed",
    "error": "sum|est - true| / sum(true)",
    "bias": "sum(est - true) / sum(true)",
    "rate_error": "(n_inferred - n_true) / n_true",
    "van_rossum": "van Rossum D² per true spike",
    "van_rossum_spikes": "van Rossum D² per true spike",
    "n_true": "true spikes (count)",
    "n_inferred": "inferred spikes (count)",
    "precision": "precision (fraction)",
    "recall": "recall (fraction)",
    "f1": "F1 (fraction)",
}
"""Y-axis label (with unit) of each metric; the scores are unitless ratios."""

_CORRELATIONS = frozenset({"corr_25hz", "corr_smoothed"})
_FRACTIONS = frozenset({"precision", "recall", "f1"})
_ZERO_IS_BEST = frozenset({"bias", "rate_error"})
_LONG_TAIL = frozenset({"van_rossum", "van_rossum_spikes", "error", "bias", "rate_error"})
_CLIP_PERCENTILE = 98.0
_DATASET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LABEL_BOX = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.0}
_FIGURE_NAMES = {
    "boxplot": "metrics_boxplot.png",
    "noise": "noise_dependence.png",
    "examples": "example_traces.png",
}


# --- helpers ------------------------------------------------------------------------------------
def method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One RGBA colour per method, from tab10 in the order the methods first appear.

    Beyond 10 methods the colours continue with the light shades of tab20, then repeat.
    """
    tab10 = colormaps["tab10"].colors
    tab20 = colormaps["tab20"].colors
    cycle = [*tab10, *tab20[1::2]]
    out: dict[str, tuple[float, float, float, float]] = {}
    for m in methods:
        if m not in out:
            r, g, b = cycle[len(out) % len(cycle)][:3]
            out[m] = (float(r), float(g), float(b), 1.0)
    return out


def _complete_colors(colors: Mapping[str, Any] | None, methods: Sequence[str]) -> dict[str, Any]:
    """``colors`` plus the next unused cycle colours for methods it lacks."""
    given = dict(colors or {})
    return {**method_colors([*given, *methods]), **given}


def _ordered_unique(values: Any) -> list[Any]:
    return list(dict.fromkeys(v for v in values if not _is_missing(v)))


def _is_missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _ok_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows with status ok and a finite value (a missing status column counts as ok)."""
    if scores is None or len(scores) == 0 or "value" not in scores or "method" not in scores:
        return pd.DataFrame(columns=["dataset", "method", "metric", "value", "noise_level"])
    s = scores
    if "status" in s:
        s = s[s["status"] == "ok"]
    v = pd.to_numeric(s["value"], errors="coerce")
    s = s.assign(value=v)[np.isfinite(v.to_numpy(dtype=float))]
    if "noise_level" not in s:
        s = s.assign(noise_level=np.nan)
    if "dataset" not in s:
        s = s.assign(dataset="")
    return s


def _y_limits(ax: Any, metric: str, values: np.ndarray) -> None:
    """Fixed limits for bounded scores when the data fit inside them; otherwise automatic."""
    if values.size == 0:
        return
    lo, hi = float(np.min(values)), float(np.max(values))
    if metric in _CORRELATIONS and lo >= -0.2 and hi <= 1.0:
        ax.set_ylim(-0.2, 1.02)
    elif metric in _FRACTIONS and lo >= 0.0 and hi <= 1.0:
        ax.set_ylim(-0.02, 1.02)


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


def _method_order(ok: pd.DataFrame, methods: Sequence[str]) -> list[str]:
    """Methods by median corr_25hz, descending; those without it after, in input order."""
    corr = ok[ok["metric"] == "corr_25hz"].groupby("method", sort=False)["value"].median()
    ranked = sorted((m for m in methods if m in corr.index), key=lambda m: -corr[m])
    return ranked + [m for m in methods if m not in corr.index]


# --- box plots ----------------------------------------------------------------------------------
def _marker(j: int, n_datasets: int) -> str:
    """Marker of dataset ``j``: its own shape among few datasets, a dot among many."""
    return _DATASET_MARKERS[j] if n_datasets <= len(_DATASET_MARKERS) else "o"


def metric_boxplots(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    metrics: Sequence[str] = ("corr_25hz", "corr_smoothed", "van_rossum", "f1", "error", "bias"),
    *,
    colors: Mapping[str, Any] | None = None,
    dpi: int = DPI,
) -> Path | None:
    """Box plots of per-cell scores, one panel per metric and one box per method.

    Boxes pool the per-cell values (status ok, NaN dropped) of all datasets; whiskers span 1.5
    IQR, outliers are small circles. With more than one dataset each dataset's median per method
    is overlaid as a dark marker (one marker shape per dataset, jittered sideways). Methods are
    ordered by median ``corr_25hz`` (descending), and each tick label gives the number of cells
    (n). Metrics absent from the data are skipped; ``bias`` and ``rate_error`` get a reference
    line at 0 (best); van Rossum distances are clipped on the y axis at their 98th percentile (said
    in the panel title). All scores are unitless (see :data:`METRIC_LABELS`).

    Writes a PNG at ``path`` (``dpi`` dots per inch) and returns it, or returns None and writes
    nothing when none of ``metrics`` has an ok value.
    """
    ok = _ok_rows(scores)
    metrics = [m for m in dict.fromkeys(metrics) if (ok["metric"] == m).any()]
    if not metrics:
        return None
    methods = _method_order(ok, _ordered_unique(scores["method"]))
    colors = _complete_colors(colors, _ordered_unique(scores["method"]))
    datasets = _ordered_unique(ok["dataset"])
    overlay = len(datasets) > 1

    n_panels = len(metrics)
    ncols = min(3, n_panels)
    nrows = -(-n_panels // ncols)
    width = max(3.2, 0.7 * len(methods) + 1.2)
    fig = Figure(figsize=(width * ncols, 3.4 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)

    positions = np.arange(1, len(methods) + 1, dtype=float)
    for ax, metric in zip(axes, metrics, strict=False):
        rows = ok[ok["metric"] == metric]
        per_method = [rows.loc[rows["method"] == m, "value"].to_numpy(float) for m in methods]
        has = [v.size > 0 for v in per_method]
        bp = ax.boxplot(
            [v for v in per_method if v.size],
            positions=positions[has],
            widths=0.6,
            patch_artist=True,
            medianprops={"color": "black", "linewidth": 1.5},
            flierprops={"marker": "o", "markersize": 2.5, "alpha": 0.5},
        )
        for patch, m in zip(bp["boxes"], [m for m, h in zip(methods, has, strict=True) if h],
                            strict=True):
            patch.set_facecolor(colors[m])
            patch.set_alpha(0.55)
        if overlay:
            # one marker shape per dataset while they can be told apart; dots beyond that
            offsets = np.linspace(-0.22, 0.22, len(datasets)) if len(datasets) > 1 else [0.0]
            for j, d in enumerate(datasets):
                med = rows[rows["dataset"] == d].groupby("method", sort=False)["value"].median()
                xs = [positions[i] + offsets[j] for i, m in enumerate(methods) if m in med.index]
                ys = [med[m] for m in methods if m in med.index]
                ax.plot(xs, ys, linestyle="none", marker=_marker(j, len(datasets)),
                        markersize=4.5, markerfacecolor="0.15", markeredgecolor="white",
                        markeredgewidth=0.5, zorder=5)
        for x, h in zip(positions, has, strict=True):
            if not h:
                ax.text(x, 0.5, "no data", transform=ax.get_xaxis_transform(), ha="center",
                        va="center", rotation=90, fontsize=8, color="0.5")
        if metric in _ZERO_IS_BEST:
            ax.axhline(0.0, color="0.3", linestyle="--", linewidth=0.9, zorder=0)
        values = rows["value"].to_numpy(float)
        title = metric
        if metric in _LONG_TAIL and values.size:
            top = float(np.percentile(values, _CLIP_PERCENTILE))
            if top < values.max():
                lo = min(0.0, float(values.min()))
                ax.set_ylim(lo, top + 0.05 * (top - lo) if top > lo else lo + 1.0)
                title += f"\n(y clipped at {_CLIP_PERCENTILE:g}th percentile, {top:.3g})"
        else:
            _y_limits(ax, metric, values)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(METRIC_LABELS.get(metric, f"{metric} (unitless)"), fontsize=9)
        ax.set_xticks(positions)
        ax.set_xticklabels([f"{m}\nn={v.size}" for m, v in zip(methods, per_method, strict=True)],
                           rotation=30 if len(methods) > 4 else 0, fontsize=8,
                           ha="right" if len(methods) > 4 else "center")
        ax.set_xlim(0.4, len(methods) + 0.6)
        ax.grid(axis="y", alpha=0.3)

    handles: list[Any] = [Patch(facecolor=colors[m], alpha=0.55, label=m) for m in methods]
    if overlay:
        labels = ([f"median, {d}" for d in datasets] if len(datasets) <= len(_DATASET_MARKERS)
                  else [f"median of one dataset\n({len(datasets)} datasets)"])
        handles += [Line2D([], [], linestyle="none", marker=_marker(j, len(datasets)),
                           markerfacecolor="0.15", markeredgecolor="white", color="0.15",
                           label=label) for j, label in enumerate(labels)]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    n_cells = ok.drop_duplicates([c for c in ("dataset", "recording", "cell") if c in ok])
    fig.suptitle(f"Per-cell scores pooled over {len(datasets)} dataset(s), "
                 f"{len(n_cells)} cells (n = cells with a finite score)", fontsize=11)
    note = _failed_note(scores)
    if note:
        fig.supxlabel(note, fontsize=8, color="0.35")
    return _save(fig, path, dpi)


def _failed_note(scores: pd.DataFrame) -> str:
    if "status" not in scores or len(scores) == 0:
        return ""
    keys = [c for c in ("dataset", "recording", "method") if c in scores]
    failed = scores[scores["status"] != "ok"].drop_duplicates(keys)
    if failed.empty:
        return ""
    counts = failed.groupby("method", sort=False).size()
    return "failed cases (not plotted): " + ", ".join(f"{m} ({n})" for m, n in counts.items())


# --- noise dependence ---------------------------------------------------------------------------
def performance_vs_noise(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    metric: str = "corr_25hz",
    n_bins: int = 6,
    *,
    colors: Mapping[str, Any] | None = None,
    dpi: int = DPI,
) -> Path | None:
    """A score against the cells' noise level nu (% Hz^-1/2), per method.

    The cells' nu values (each cell once, over all datasets) are cut into ``n_bins`` quantile
    bins shared by all methods (fewer where quantiles tie). Per method and bin the median score is
    drawn at the bin's median nu as a line with markers, the interquartile range as a light band.
    Cells with NaN nu are ignored. With fewer than two distinct nu values the figure is a strip
    plot per method instead (every cell a dot, median as a bar), with all cells.

    Writes a PNG at ``path`` and returns it, or returns None and writes nothing when ``metric``
    has no ok value.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    ok = _ok_rows(scores)
    rows = ok[ok["metric"] == metric]
    if rows.empty:
        return None
    methods = _method_order(ok, _ordered_unique(scores["method"]))
    methods = [m for m in methods if (rows["method"] == m).any()]
    colors = _complete_colors(colors, _ordered_unique(scores["method"]))
    nu = pd.to_numeric(rows["noise_level"], errors="coerce").to_numpy(float)
    finite = np.isfinite(nu)
    cell_keys = [c for c in ("dataset", "recording", "cell") if c in rows]
    cells = rows[finite].drop_duplicates(cell_keys) if cell_keys else rows[finite]
    cell_nu = pd.to_numeric(cells["noise_level"], errors="coerce").to_numpy(float)
    label = METRIC_LABELS.get(metric, f"{metric} (unitless)")

    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    if np.unique(cell_nu).size < 2:
        _strip_plot(ax, rows, methods, colors)
        why = ("no cell has a noise level" if cell_nu.size == 0
               else f"all cells at nu = {cell_nu[0]:.3g} % Hz$^{{-1/2}}$")
        ax.set_title(f"{metric} per method ({why}; no noise dependence to show)", fontsize=10)
        ax.set_ylabel(label)
        ax.set_xlabel("method")
    else:
        rows = rows[finite]
        nu = nu[finite]
        edges = np.unique(np.quantile(cell_nu, np.linspace(0.0, 1.0, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, nu, side="right") - 1, 0, edges.size - 2)
        cell_bin = np.clip(np.searchsorted(edges, cell_nu, side="right") - 1, 0, edges.size - 2)
        x_bin = np.array([np.median(cell_nu[cell_bin == b]) if (cell_bin == b).any() else np.nan
                          for b in range(edges.size - 1)])
        values = rows["value"].to_numpy(float)
        method_of = rows["method"].to_numpy()
        for m in methods:
            stats = []
            for b in range(edges.size - 1):
                v = values[(method_of == m) & (which == b)]
                if v.size and np.isfinite(x_bin[b]):
                    stats.append((x_bin[b], *np.percentile(v, [25, 50, 75])))
            if not stats:
                continue
            x, q1, med, q3 = np.array(stats).T
            ax.fill_between(x, q1, q3, color=colors[m], alpha=0.15, linewidth=0)
            ax.plot(x, med, marker="o", markersize=4, color=colors[m], label=m)
        for e in edges[1:-1]:  # the outer edges are the extreme cells: not drawn
            ax.axvline(e, color="0.85", linewidth=0.7, zorder=0)
        xs = x_bin[np.isfinite(x_bin)]
        if xs.size and xs.min() > 0 and xs.max() / xs.min() > 4:
            ax.set_xscale("log")  # real data span decades of nu
            ax.set_xlim(xs.min() / 1.25, xs.max() * 1.25)
        elif xs.size:
            pad = 0.08 * (xs.max() - xs.min()) or 0.5
            ax.set_xlim(xs.min() - pad, xs.max() + pad)
        _y_limits(ax, metric, values)
        ax.set_xlabel("noise level nu (% Hz$^{-1/2}$)")
        ax.set_ylabel(label)
        ax.set_title(f"{metric} vs noise: median per nu bin, band = interquartile range\n"
                     f"{edges.size - 1} quantile bins over {cell_nu.size} cells "
                     f"(grey lines: inner bin edges)", fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="best")
    if metric in _ZERO_IS_BEST:
        ax.axhline(0.0, color="0.3", linestyle="--", linewidth=0.9, zorder=0)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, dpi)


def _strip_plot(ax: Any, rows: pd.DataFrame, methods: list[str],
                colors: Mapping[str, Any]) -> None:
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    all_values = []
    for i, m in enumerate(methods):
        v = rows.loc[rows["method"] == m, "value"].to_numpy(float)
        all_values.append(v)
        ax.plot(i + rng.uniform(-0.18, 0.18, v.size), v, linestyle="none", marker="o",
                markersize=3.5, alpha=0.6, color=colors[m])
        ax.plot([i - 0.28, i + 0.28], [np.median(v)] * 2, color="black", linewidth=1.8)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([f"{m}\nn={v.size}" for m, v in zip(methods, all_values, strict=True)],
                       fontsize=8)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    metric = rows["metric"].iloc[0]
    _y_limits(ax, metric, np.concatenate(all_values) if all_values else np.array([]))


# --- example traces -----------------------------------------------------------------------------
def busiest_window(
    spike_times: Any, t_start: float, t_end: float, window_s: float
) -> tuple[float, float]:
    """The stretch ``[start, end]`` of ``window_s`` seconds in ``[t_start, t_end]`` (s) holding
    the most spikes (closed interval), with those spikes centred in it.

    Spikes outside ``[t_start, t_end]`` and NaN are ignored. Among equally busy windows the
    earliest wins; the window is then shifted so that its first and last spike are equally far
    from its edges (clipped to the range), which keeps the count. With no spikes it is the first
    ``window_s`` seconds; a range shorter than ``window_s`` is returned whole.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    t_start, t_end = float(t_start), float(t_end)
    if t_end - t_start <= window_s:
        return t_start, t_end
    s = np.asarray(spike_times, dtype=float).ravel()
    s = np.sort(s[np.isfinite(s) & (s >= t_start) & (s <= t_end)])
    if s.size == 0:
        return t_start, t_start + window_s
    # An optimal window can start at a spike; starts past t_end - window_s clip to it.
    starts = np.minimum(s, t_end - window_s)
    counts = np.searchsorted(s, starts + window_s, side="right") - np.searchsorted(
        s, starts, side="left")
    best = int(np.argmax(counts))
    inside = s[(s >= starts[best]) & (s <= starts[best] + window_s)]
    start = 0.5 * (inside[0] + inside[-1]) - 0.5 * window_s
    start = min(max(start, t_start), t_end - window_s)
    return start, start + window_s


def _spike_ticks(ax: Any, times: np.ndarray, y: float, **kw: Any) -> None:
    if times.size:
        ax.plot(times, np.full(times.size, y), linestyle="none", marker="|", **kw)


def example_traces(
    examples: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    max_methods: int = 7,
    window_s: float = 30.0,
    *,
    colors: Mapping[str, Any] | None = None,
    dpi: int = DPI,
) -> Path | None:
    """Example cells: the dF/F trace and each method's estimate over the busiest stretch.

    ``examples``: dicts with ``title`` (str), ``frame_times`` (s), ``trace`` (dF/F, fraction),
    ``true_spike_times`` (s) and ``estimates`` (method name -> dict with ``estimate``, expected
    spikes per frame, same length as the trace, NaN allowed, and ``spike_times`` (s) or None).
    One column per example (the first 3). The top row is the trace with the true spikes as black
    ticks under it; then one row per method (the first ``max_methods`` method names, in order of
    appearance): its estimate as a step line, its inferred spikes as coloured ticks and the true
    spikes as faint ticks below. Each column shows the ``window_s`` seconds holding the most true
    spikes (:func:`busiest_window`), x axes shared within the column.

    Writes a PNG at ``path`` and returns it, or returns None and writes nothing when
    ``examples`` is empty.
    """
    examples = list(examples)[:3]
    if not examples:
        return None
    return _save(_example_figure(examples, max_methods, window_s, colors), path, dpi)


def _example_figure(examples: Sequence[Mapping[str, Any]], max_methods: int, window_s: float,
                    colors: Mapping[str, Any] | None) -> Figure:
    examples = list(examples)[:3]
    methods = _ordered_unique(m for ex in examples for m in (ex.get("estimates") or {}))
    methods = methods[:max(0, max_methods)]
    colors = _complete_colors(colors, methods)
    ncols, nrows = len(examples), 1 + len(methods)
    fig = Figure(figsize=(4.8 * ncols + 0.3, 1.6 + 1.15 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex="col")

    for col, ex in enumerate(examples):
        t = np.asarray(ex["frame_times"], dtype=float).ravel()
        trace = np.asarray(ex["trace"], dtype=float).ravel()
        if trace.size != t.size:  # tolerate a mismatch rather than fail the whole run
            n = min(trace.size, t.size)
            t, trace = t[:n], trace[:n]
        true = np.asarray(ex.get("true_spike_times", []), dtype=float).ravel()
        true = true[np.isfinite(true)]
        t0, t1 = (float(np.nanmin(t)), float(np.nanmax(t))) if t.size else (0.0, 1.0)
        w0, w1 = busiest_window(true, t0, t1, window_s)
        frames = (t >= w0) & (t <= w1)
        true_w = true[(true >= w0) & (true <= w1)]

        ax = axes[0, col]
        tr = trace[frames]
        ax.plot(t[frames], tr, color="0.2", linewidth=0.8)
        finite = tr[np.isfinite(tr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        _spike_ticks(ax, true_w, lo - 0.12 * span, color="black", markersize=7)
        ax.set_ylim(lo - 0.22 * span, hi + 0.05 * span)
        ax.set_title(f"{ex.get('title', '')}\n{true_w.size} true spikes in "
                     f"{w0:.1f}-{w1:.1f} s", fontsize=9)
        if col == 0:
            ax.set_ylabel("dF/F\n(fraction)", fontsize=8)
        ax.text(0.01, 0.97, "trace", transform=ax.transAxes, va="top", fontsize=8,
                fontweight="bold", bbox=_LABEL_BOX, zorder=10)

        for row, m in enumerate(methods, start=1):
            ax = axes[row, col]
            if col == 0:
                ax.set_ylabel("spikes /\nframe", fontsize=8)
            ax.text(0.01, 0.97, m, transform=ax.transAxes, va="top", fontsize=8,
                    fontweight="bold", color=colors[m], bbox=_LABEL_BOX, zorder=10)
            est = (ex.get("estimates") or {}).get(m)
            if est is None:
                ax.text(0.5, 0.5, "not run on this cell", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="0.4")
                continue
            e = np.asarray(est.get("estimate", []), dtype=float).ravel()
            ew = e[frames] if e.size == t.size else np.full(int(frames.sum()), np.nan)
            top = float(np.nanmax(ew)) if np.isfinite(ew).any() else 0.0
            top = top if top > 0 else 1.0
            if np.isfinite(ew).any():
                ax.step(t[frames], ew, where="mid", color=colors[m], linewidth=0.9)
            else:
                ax.text(0.5, 0.6, "no estimate in this window (NaN)", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="0.4")
            st = est.get("spike_times")
            if st is not None:
                st = np.asarray(st, dtype=float).ravel()
                st = st[np.isfinite(st) & (st >= w0) & (st <= w1)]
                _spike_ticks(ax, st, -0.13 * top, color=colors[m], markersize=6)
            _spike_ticks(ax, true_w, -0.3 * top, color="black", alpha=0.3, markersize=6)
            ax.set_ylim(-0.4 * top, 1.08 * top)
        axes[-1, col].set_xlim(w0, w1)
        axes[-1, col].set_xlabel("time (s)")

    legend = [
        Line2D([], [], color="0.2", linewidth=0.8, label="dF/F trace"),
        Line2D([], [], color="black", linestyle="none", marker="|", markersize=7,
               label="true spikes"),
        Line2D([], [], color="0.5", linewidth=0.9, drawstyle="steps-mid",
               label="estimate (expected spikes/frame)"),
        Line2D([], [], color="0.5", linestyle="none", marker="|", markersize=7,
               label="inferred spike times"),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncols=min(4, 2 * ncols), fontsize=8,
               frameon=False)
    return fig


# --- all figures of a run -----------------------------------------------------------------------
def write_figures(
    out_dir: str | os.PathLike,
    scores: pd.DataFrame,
    examples: Sequence[Mapping[str, Any]] | None = None,
) -> list[Path]:
    """Write the figures of a suite run into ``out_dir/figures/`` and return the files written.

    ``metrics_boxplot.png`` (:func:`metric_boxplots`), ``noise_dependence.png``
    (:func:`performance_vs_noise` of ``corr_25hz``) and, with ``examples``,
    ``example_traces.png`` (:func:`example_traces`). A figure without ok data is skipped, and an
    older file of that name is removed so that no stale figure is left beside the new ones.
    Methods keep one colour in all figures.
    """
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    names = _ordered_unique(scores["method"]) if "method" in scores else []
    if examples:
        names += [m for ex in examples for m in (ex.get("estimates") or {})]
    colors = method_colors(names)
    written = {
        "boxplot": metric_boxplots(scores, folder / _FIGURE_NAMES["boxplot"], colors=colors),
        "noise": performance_vs_noise(scores, folder / _FIGURE_NAMES["noise"], colors=colors),
        "examples": example_traces(examples, folder / _FIGURE_NAMES["examples"], colors=colors)
        if examples else None,
    }
    for key, p in written.items():
        if p is None:
            (folder / _FIGURE_NAMES[key]).unlink(missing_ok=True)
    return [p for p in written.values() if p is not None]
