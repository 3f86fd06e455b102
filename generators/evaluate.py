"""Evaluate generated traces against real ones: CalciumGAN's protocol plus a classifier test.

``evaluate_gan(real, fake, output)`` reads two trace files ``(trials, cells, frames)`` with the
same cells and frame rate (Hz), and:

1. Cuts both into windows of ``W = min(frames of fake, frames of real)`` frames, without
   overlap, dropping any incomplete remainder. A GAN file holds one window per trial; a real
   recording is often one long trial and would otherwise give statistics over a much longer time
   (the van Rossum distance grows with duration, correlations get less noisy), so every
   statistic is computed per window on equal lengths and pooled over windows.
2. Infers spikes per window (all windows x cells in one batched call) with a registered method
   (default ``oasis-ar1``; its ``spike_times``, s, frame ``k`` at ``k / frame_rate``).
3. Per window, :func:`cabench.benchmark.metrics.population_statistics`: firing rate (Hz per
   neuron), pairwise Pearson r of spike counts in 0.5 s bins, pairwise van Rossum distance
   (tau 1 s); pooled over windows and compared with
   :func:`cabench.benchmark.metrics.compare_values` (KL(reference || compared) of 30-bin
   histograms, the paper's measure, and the Wasserstein distance). This is what
   :func:`~cabench.benchmark.metrics.compare_populations` does for one population each; here the
   populations are many windows.
4. With ground-truth spikes in the real file, the statistics of the true spikes (same windows;
   a spike in frame ``k``'s interval counts at ``k / frame_rate`` as an inferred one does) are a
   second reference: rows ``reference=truth`` for the generated and for the inferred real
   spikes, so the share of the gap that comes from the inference method is visible.
5. A classifier two-sample test (C2ST): a small fresh 1-D convolutional classifier
   (:class:`WindowClassifier`, cells as channels, global average pooling so any window length
   works) learns to tell real from generated windows, both scaled to [0, 1] with the real
   data's min and max. Real and generated windows are first balanced (the larger set
   subsampled), then each is split 50/50 into train and test; logistic loss, Adam. The ROC AUC
   (:func:`roc_auc`, rank formula) and accuracy on the test split are reported; 0.5 means
   indistinguishable. Deterministic for a seed on the CPU (``torch.Generator`` for weights,
   split and batches).

Outputs in the output folder: ``comparison.csv`` (one row per statistic and reference; columns
:data:`COLUMNS`) and ``figures/`` (:data:`FIGURES`), all written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cabench.benchmark.metrics import compare_values, population_statistics
from cabench.errors import CabenchError
from cabench.traceset import TraceSet, atomic_path

__all__ = [
    "COLUMNS",
    "FIGURES",
    "STATISTICS",
    "WindowClassifier",
    "c2st",
    "cut_windows",
    "evaluate_gan",
    "roc_auc",
    "window_statistics",
]

#: Population statistics compared, in the order of the table.
STATISTICS = ("firing_rate", "correlation", "van_rossum")
#: Columns of comparison.csv. ``reference``/``compared``: which samples (real = inferred from
#: the real traces, fake = inferred from the generated ones, truth = ground-truth spikes of the
#: real file). For ``statistic=c2st_auc``, ``value`` is the test ROC AUC and ``accuracy`` the test
#: accuracy, ``n_real``/``n_fake`` the test windows; for the statistics ``n_*`` count values.
COLUMNS = ("statistic", "reference", "compared", "kl", "wasserstein", "value", "accuracy",
           "n_real", "n_fake", "window_frames", "method", "seed", "real_path", "fake_path")
#: Figure files written into ``figures/``.
FIGURES = ("example_traces.png", "rasters.png", "statistics.png", "power_spectra.png")
BIN_S = 0.5
TAU_S = 1.0
KL_BINS = 30
DPI = 110
_LABELS = {"firing_rate": "firing rate (Hz)", "correlation": "Pearson r (0.5 s bins)",
           "van_rossum": "van Rossum distance (tau 1 s)"}
_COLORS = {"real": "tab:blue", "fake": "tab:orange", "truth": "tab:green"}


# --- inputs and windows ----------------------------------------------------------------------
def _load(path: str | Path, what: str) -> TraceSet:
    """One recording from any format :func:`cabench.readers.read_traces` reads."""
    from cabench.readers import read_traces

    sets = read_traces(path)
    if len(sets) != 1:
        raise CabenchError(f"{path}: the {what} input holds {len(sets)} recordings; give one "
                           "file of one recording")
    ts = sets[0]
    if ts.n_frames < 2 or ts.n_cells < 1 or ts.n_trials < 1:
        raise CabenchError(f"{path}: the {what} file holds no traces")
    if not np.isfinite(ts.traces).any():
        raise CabenchError(f"{path}: the {what} file holds no finite trace values")
    return ts


def _check_pair(real: TraceSet, fake: TraceSet, real_path: Any, fake_path: Any) -> None:
    if real.n_cells != fake.n_cells:
        raise CabenchError(f"{real_path} has {real.n_cells} cells but {fake_path} has "
                           f"{fake.n_cells}; compare files of the same cells")
    if not math.isclose(real.frame_rate, fake.frame_rate, rel_tol=1e-6):
        raise CabenchError(f"{real_path} is at {real.frame_rate:g} Hz but {fake_path} at "
                           f"{fake.frame_rate:g} Hz; compare files of the same frame rate")


def cut_windows(traces: np.ndarray, window: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Non-overlapping windows ``(n, cells, window)`` of ``traces (trials, cells, frames)`` and
    their ``(trial, first frame)``; each trial's incomplete remainder is dropped."""
    trials, _, frames = traces.shape
    starts = [(t, s) for t in range(trials) for s in range(0, frames - window + 1, window)]
    if not starts:
        raise CabenchError(f"no window of {window} frames fits in {frames} frames")
    out = np.stack([traces[t, :, s:s + window] for t, s in starts])
    return out, starts


def _inferred_trains(method: Any, windows: np.ndarray, frame_rate: float,
                     ) -> list[list[np.ndarray]]:
    """Inferred spike times (s from each window's start) per window and cell."""
    res = method.infer(windows, frame_rate)
    n, cells = windows.shape[:2]
    return [[res.spike_times[i * cells + c] for c in range(cells)] for i in range(n)]


def _true_trains(ts: TraceSet, starts: Sequence[tuple[int, int]]) -> list[list[np.ndarray]]:
    """Ground-truth spike times per window and cell, on the inferred spikes' clock: a spike in
    frame ``k``'s interval (edges half a frame either side) lies in ``[k, k + 1) / frame_rate``."""
    fr = ts.frame_rate
    ft = ts.times()
    out = []
    for t, s in starts:
        t0 = ft[s] - 0.5 / fr
        out.append([ts.spikes(t, c) - t0 for c in range(ts.n_cells)])
    return out


def window_statistics(trains: Sequence[Sequence[np.ndarray]], duration: float
                      ) -> dict[str, np.ndarray]:
    """:data:`STATISTICS` of each window's spike trains (s, recording ``[0, duration)``),
    pooled over windows."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in STATISTICS}
    for w in trains:
        st = population_statistics(list(w), duration=duration, bin_s=BIN_S, tau_s=TAU_S)
        for k in STATISTICS:
            parts[k].append(st[k])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


# --- classifier two-sample test -----------------------------------------------------------------
def roc_auc(scores: Any, labels: Any) -> float:
    """ROC AUC by the rank formula (Mann-Whitney U / (n_pos n_neg)), ties as mid-ranks (count
    half). ``labels`` are 1 (positive) and 0; NaN without both classes."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise CabenchError(f"{s.size} scores for {y.size} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class WindowClassifier(nn.Module):
    """Scaled windows ``(batch, cells, frames)`` -> one logit per window (real = 1): two strided
    convolutions (cells as channels), LeakyReLU 0.2, global average and max pooling over time,
    a linear read-out."""

    def __init__(self, n_cells: int, channels: int = 32, kernel: int = 9) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(n_cells, channels, kernel, stride=2, padding=kernel // 2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, kernel, stride=2, padding=kernel // 2),
            nn.LeakyReLU(0.2),
        )
        self.out = nn.Linear(2 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=1)).squeeze(1)


def c2st(real: np.ndarray, fake: np.ndarray, seed: int = 0, device: str | torch.device = "cpu",
         steps: int = 300, batch_size: int = 32, lr: float = 1e-3) -> dict[str, float]:
    """Classifier two-sample test of windows ``(n, cells, frames)`` (see the module docstring).

    Returns ``auc`` and ``accuracy`` on the test split and ``n_real``/``n_fake`` test windows;
    NaN scores when either set has fewer than 2 windows.
    """
    gen = torch.Generator().manual_seed(int(seed))
    n = min(len(real), len(fake))
    if n < 2:
        return dict(auc=float("nan"), accuracy=float("nan"), n_real=0, n_fake=0)
    lo = float(np.nanmin(real))
    hi = float(np.nanmax(real))
    scale = hi - lo if hi > lo else 1.0

    def prep(x: np.ndarray) -> torch.Tensor:
        idx = torch.randperm(len(x), generator=gen)[:n].numpy()
        y = (np.asarray(x[np.sort(idx)], np.float32) - lo) / scale
        return torch.from_numpy(np.nan_to_num(y, nan=0.0))

    xr, xf = prep(real), prep(fake)
    n_train = n // 2
    pr, pf = torch.randperm(n, generator=gen), torch.randperm(n, generator=gen)
    x_train = torch.cat([xr[pr[:n_train]], xf[pf[:n_train]]])
    y_train = torch.cat([torch.ones(n_train), torch.zeros(n_train)])
    x_test = torch.cat([xr[pr[n_train:]], xf[pf[n_train:]]])
    y_test = torch.cat([torch.ones(n - n_train), torch.zeros(n - n_train)])
    auc, accuracy = fit_classifier(x_train, y_train, x_test, y_test, seed, gen, device, steps,
                                   batch_size, lr)
    return dict(auc=auc, accuracy=accuracy, n_real=int(n - n_train), n_fake=int(n - n_train))


def fit_classifier(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                   y_test: torch.Tensor, seed: int, gen: torch.Generator,
                   device: str | torch.device = "cpu", steps: int = 300, batch_size: int = 32,
                   lr: float = 1e-3) -> tuple[float, float]:
    """Train a fresh :class:`WindowClassifier` (initialised from ``seed``, batches drawn from
    ``gen``) on windows ``(n, channels, frames)`` labelled 1 (real) / 0 and return its test
    ROC AUC and accuracy."""
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # default init, seeded, global state untouched
        torch.manual_seed(int(seed))
        model = WindowClassifier(x_train.shape[1])
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    x_train, y_train = x_train.to(dev), y_train.to(dev)
    bs = min(batch_size, len(x_train))
    model.train()
    for _ in range(steps):
        b = torch.randint(0, len(x_train), (bs,), generator=gen).to(dev)
        opt.zero_grad()
        loss_fn(model(x_train[b]), y_train[b]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x.to(dev)).cpu() for x in torch.split(x_test, 256)])
    y, sc = y_test.numpy(), logits.numpy().astype(np.float64)
    return roc_auc(sc, y), float(np.mean((sc > 0) == (y > 0.5)))


# --- figures -------------------------------------------------------------------------------
def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path


def _figures(folder: Path, real_w: np.ndarray, fake_w: np.ndarray, fr: float,
             trains: dict[str, list[list[np.ndarray]]], stats: dict[str, dict[str, np.ndarray]],
             kl: dict[str, float], method: str) -> list[Path]:
    from matplotlib.figure import Figure
    from scipy.signal import welch

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    n_cells, window = real_w.shape[1:]
    t = np.arange(window) / fr
    cells = list(range(min(4, n_cells)))

    fig = Figure(figsize=(10, 1.6 * len(cells) + 0.8))
    axes = fig.subplots(len(cells), 2, sharex=True, squeeze=False)
    for j, (name, w) in enumerate((("real", real_w[0]), ("generated", fake_w[0]))):
        for i, c in enumerate(cells):
            ax = axes[i, j]
            ax.plot(t, w[c], lw=0.7, color=_COLORS["real" if j == 0 else "fake"])
            ax.set_ylabel(f"cell {c}\ndF/F")
            if i == 0:
                ax.set_title(f"{name} (first window)")
        axes[-1, j].set_xlabel("time (s)")
    fig.tight_layout()
    written.append(_save(fig, folder / "example_traces.png"))

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True, squeeze=False)[0]
    for ax, key, title in ((axes[0], "real", "real"), (axes[1], "fake", "generated")):
        w = trains[key][0]
        ax.eventplot([np.asarray(x) for x in w], colors=_COLORS[key], linelengths=0.8)
        ax.set_title(f"{title}: spikes inferred by {method}")
        ax.set_xlabel("time (s)")
        ax.set_xlim(0, window / fr)
    axes[0].set_ylabel("cell")
    fig.tight_layout()
    written.append(_save(fig, folder / "rasters.png"))

    fig = Figure(figsize=(4 * len(STATISTICS), 3.4))
    axes = fig.subplots(1, len(STATISTICS), squeeze=False)[0]
    for ax, name in zip(axes, STATISTICS, strict=True):
        vals = {k: v[name][np.isfinite(v[name])] for k, v in stats.items()}
        allv = np.concatenate([v for v in vals.values()] + [np.zeros(0)])
        if allv.size:
            lo, hi = float(allv.min()), float(allv.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, KL_BINS + 1)
            for k, v in vals.items():
                if v.size:
                    label = {"real": "real (inferred)", "fake": "generated (inferred)",
                             "truth": "real (ground truth)"}[k]
                    ax.hist(v, edges, density=True, histtype="step", lw=1.4,
                            color=_COLORS[k], label=label)
        ax.set_title(f"{name}: KL {kl.get(name, float('nan')):.3g}")
        ax.set_xlabel(_LABELS[name])
        ax.set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, folder / "statistics.png"))

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    nper = min(256, window)
    for key, w, label in (("real", real_w, "real"), ("fake", fake_w, "generated")):
        x = np.nan_to_num(np.asarray(w, np.float64).reshape(-1, window), nan=0.0)
        f, p = welch(x, fs=fr, nperseg=nper, axis=-1)
        ax.semilogy(f[1:], p.mean(0)[1:] + 1e-20, color=_COLORS[key], label=label)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power ((dF/F)² / Hz)")
    ax.set_title("mean power spectrum of the traces")
    ax.legend()
    fig.tight_layout()
    written.append(_save(fig, folder / "power_spectra.png"))
    return written


# --- the whole evaluation -----------------------------------------------------------------------
def _method(name: str, params: dict[str, Any] | str | None) -> Any:
    from cabench.benchmark.methods import get_method

    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except json.JSONDecodeError as e:
            raise CabenchError(f"--method-params is not valid JSON: {e}") from None
    if params is not None and not isinstance(params, dict):
        raise CabenchError("--method-params must be a JSON object, e.g. '{\"s_min\": 0.5}'")
    return get_method(name, **(params or {}))


def evaluate_gan(
    real: str | Path,
    fake: str | Path,
    output: str | Path,
    method: str = "oasis-ar1",
    method_params: dict[str, Any] | str | None = None,
    truth: bool | None = None,
    classifier: bool = True,
    seed: int = 0,
    device: str = "auto",
    figures: bool = True,
    c2st_steps: int = 300,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Compare generated traces ``fake`` with real traces ``real`` (trace files); write
    ``output/comparison.csv`` and ``output/figures/`` and return the table (:data:`COLUMNS`).

    ``method``/``method_params``: the inference method and its parameters (dict or JSON text).
    ``truth``: compare with the real file's ground-truth spikes (None: when it has them; True
    without them is an error). ``classifier``: run the C2ST. ``device``: auto, cpu or cuda for the
    classifier. See the module docstring for the protocol.
    """
    from cabench.benchmark.learned.train import resolve_device

    say = log or (lambda _msg: None)
    inf = _method(method, method_params)
    dev = resolve_device(device) if classifier else torch.device("cpu")
    r_ts, f_ts = _load(real, "real"), _load(fake, "generated")
    _check_pair(r_ts, f_ts, real, fake)
    if truth and not r_ts.has_spikes:
        raise CabenchError(f"{real} has no ground-truth spikes (leave out --truth)")
    use_truth = r_ts.has_spikes if truth is None else bool(truth)
    fr = r_ts.frame_rate
    window = min(r_ts.n_frames, f_ts.n_frames)
    real_w, starts = cut_windows(r_ts.traces, window)
    fake_w, _ = cut_windows(f_ts.traces, window)
    say(f"{len(real_w)} real and {len(fake_w)} generated windows of {window} frames "
        f"({window / fr:.3g} s); inferring spikes with {method}")
    trains = {"real": _inferred_trains(inf, real_w, fr), "fake": _inferred_trains(inf, fake_w, fr)}
    if use_truth:
        trains["truth"] = _true_trains(r_ts, starts)
    duration = window / fr
    stats = {k: window_statistics(v, duration) for k, v in trains.items()}
    common = dict(window_frames=window, method=method, seed=seed, real_path=str(real),
                  fake_path=str(fake))
    rows = []
    pairs = [("real", "fake")] + ([("truth", "fake"), ("truth", "real")] if use_truth else [])
    for ref, cmp in pairs:
        for name in STATISTICS:
            v = compare_values(stats[ref][name], stats[cmp][name], KL_BINS)
            rows.append(dict(statistic=name, reference=ref, compared=cmp, kl=v["kl"],
                             wasserstein=v["wasserstein"], value=float("nan"),
                             accuracy=float("nan"), n_real=v["n_real"],
                             n_fake=v["n_generated"], **common))
    if classifier:
        say(f"classifier two-sample test on {dev}")
        c = c2st(real_w, fake_w, seed=seed, device=dev, steps=c2st_steps)
        rows.append(dict(statistic="c2st_auc", reference="real", compared="fake",
                         kl=float("nan"), wasserstein=float("nan"), value=c["auc"],
                         accuracy=c["accuracy"], n_real=c["n_real"], n_fake=c["n_fake"],
                         **common))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "comparison.csv", overwrite=True) as tmp:
        df.to_csv(tmp, index=False)
    if figures:
        kl = {r["statistic"]: r["kl"] for r in rows
              if r["reference"] == "real" and r["compared"] == "fake"}
        _figures(out / "figures", real_w, fake_w, fr, trains, stats, kl, method)
    return df
