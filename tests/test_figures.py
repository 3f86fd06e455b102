"""Figures of a suite run: files written atomically, valid PNGs, edge cases that must not crash."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from cabench.benchmark import figures
from cabench.benchmark.figures import (
    busiest_window,
    example_traces,
    method_colors,
    metric_boxplots,
    performance_vs_noise,
    write_figures,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ("oasis", "cascade", "mlspike")
METRICS = ("corr_25hz", "corr_smoothed", "error", "bias", "van_rossum", "f1", "n_true")


def _scores(n_cells: int = 20, nu: float | None = None, seed: int = 0) -> pd.DataFrame:
    """2 datasets x 3 methods x ``n_cells`` cells (nu spread over 1-7, or all ``nu``), plus one
    failed (dataset, recording, method) case whose rows have NaN values and an empty cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for ds in ("real-6f", "sim-8m"):
        for c in range(n_cells):
            cell_nu = 1.0 + 6.0 * c / (n_cells - 1) if nu is None else nu
            for k, m in enumerate(METHODS):
                for metric in METRICS:
                    if metric == "van_rossum":
                        v = rng.lognormal(0.0, 1.5)  # long tail
                    elif metric == "f1" and m == "cascade":
                        v = np.nan  # no spike times: NaN rows with status ok
                    else:
                        v = 0.7 - 0.05 * cell_nu - 0.1 * k + 0.1 * rng.normal()
                    rows.append((ds, "real", f"rec{c // 10}", f"c{c}", cell_nu, m, metric, v,
                                 1.0, "ok"))
        for metric in METRICS:
            rows.append((ds, "real", "rec9", "", np.nan, "mlspike", metric, np.nan, 0.2,
                         "failed"))
    cols = ["dataset", "source", "recording", "cell", "noise_level", "method", "metric", "value",
            "seconds", "status"]
    return pd.DataFrame(rows, columns=cols)


def _example(seed: int, *, nan: bool = False, spikes: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    fr = 30.0
    t = np.arange(int(45 * fr)) / fr
    true = np.sort(rng.uniform(0.0, 45.0, 30)) if spikes else np.array([])
    counts = np.histogram(true, np.append(t, t[-1] + 1 / fr) - 0.5 / fr)[0].astype(float)
    trace = 0.2 * np.convolve(counts, np.exp(-np.arange(30) / 6.0))[: t.size]
    trace += 0.02 * rng.normal(size=t.size)
    estimates = {}
    for m in METHODS:
        e = counts * 0.8 + 0.05 * rng.random(t.size)
        if nan:
            e[:32] = np.nan
            e[-32:] = np.nan
        estimates[m] = {
            "estimate": np.full(t.size, np.nan) if nan and m == "mlspike" else e,
            "spike_times": None if m == "cascade" else true + 0.01,
        }
    return {"title": f"cell {seed}", "frame_times": t, "trace": trace,
            "true_spike_times": true, "estimates": estimates}


def _check_png(path: Path) -> np.ndarray:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size < 300_000
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert h > 200 and w > 200 and 0.3 < h / w < 2.5
    assert img[..., :3].std() > 0  # not a blank canvas
    return img


def _no_temp_files(folder: Path) -> None:
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".") or ".tmp" in n], names


# --- window selection ---------------------------------------------------------------------------
def test_busiest_window_hand_computed():
    spikes = [1, 2, 3, 10, 11, 12, 13, 30]
    # windows of 5 s starting at a spike hold 3, 2, 1, 4, 3, 2, 1, 1 spikes: best [10, 15],
    # its spikes 10-13 centred -> start 11.5 - 2.5 = 9
    assert busiest_window(spikes, 0.0, 40.0, 5.0) == (9.0, 14.0)
    # ties: the earliest wins; one spike centred
    assert busiest_window([5.0, 20.0], 0.0, 40.0, 4.0) == (3.0, 7.0)
    # centring is clipped to the range at both ends
    assert busiest_window([38.0, 39.0, 39.5], 0.0, 40.0, 5.0) == (35.0, 40.0)
    assert busiest_window([0.1, 0.2, 20.0], 0.0, 40.0, 5.0) == (0.0, 5.0)
    # spikes outside the range and NaN are ignored
    assert busiest_window([-5, -4, -3, 10, np.nan, 50, 51, 52], 0.0, 40.0, 4.0) == (8.0, 12.0)
    # no spikes: the first window; a short range: all of it
    assert busiest_window([], 2.0, 40.0, 5.0) == (2.0, 7.0)
    assert busiest_window([1.0], 0.0, 3.0, 5.0) == (0.0, 3.0)
    with pytest.raises(ValueError, match="window_s"):
        busiest_window([1.0], 0.0, 10.0, 0.0)


def test_busiest_window_matches_brute_force():
    rng = np.random.default_rng(3)
    spikes = np.concatenate([rng.uniform(0, 100, 40), rng.uniform(60, 66, 15)])
    start, end = busiest_window(spikes, 0.0, 100.0, 10.0)
    assert end - start == pytest.approx(10.0)
    count = ((spikes >= start) & (spikes <= end)).sum()
    grid = np.linspace(0.0, 90.0, 9001)
    brute = max(((spikes >= s) & (spikes <= s + 10.0)).sum() for s in grid)
    assert count == brute


def test_example_traces_shows_the_busiest_window():
    ex = _example(1)
    ex["true_spike_times"] = np.concatenate([ex["true_spike_times"], np.linspace(31, 33, 12)])
    fig = figures._example_figure([ex], max_methods=7, window_s=10.0, colors=None)
    want = busiest_window(ex["true_spike_times"], 0.0, ex["frame_times"][-1], 10.0)
    assert 31 - 1e-9 >= want[0] and 33 <= want[1]
    for ax in fig.axes:
        assert ax.get_xlim() == pytest.approx(want)


# --- files --------------------------------------------------------------------------------------
def test_write_figures_writes_valid_pngs(tmp_path):
    scores = _scores()
    examples = [_example(1), _example(2, nan=True), _example(3, spikes=False)]
    written = write_figures(tmp_path, scores, examples)
    folder = tmp_path / "figures"
    assert written == [folder / "metrics_boxplot.png", folder / "noise_dependence.png",
                       folder / "example_traces.png"]
    for p in written:
        _check_png(p)
    _no_temp_files(folder)
    # a second run replaces the files in place, and removes the figure it no longer makes
    first = written[0].read_bytes()
    assert write_figures(tmp_path, scores[scores["metric"] == "corr_25hz"]) == written[:2]
    assert written[0].read_bytes() != first
    _check_png(written[0])
    assert sorted(folder.iterdir()) == sorted(written[:2])


def test_all_failed_writes_no_score_figures(tmp_path):
    scores = _scores()
    scores = scores.assign(status="failed", value=np.nan)
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "metrics_boxplot.png").write_bytes(b"stale")
    assert write_figures(tmp_path, scores) == []
    assert sorted(folder.iterdir()) == []  # the stale figure is gone too
    # the examples figure needs no scores
    written = write_figures(tmp_path, scores, [_example(1)])
    assert [p.name for p in written] == ["example_traces.png"]


def test_empty_scores_and_no_examples(tmp_path):
    assert write_figures(tmp_path, _scores().iloc[:0], []) == []
    assert example_traces([], tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


def test_single_noise_level_gives_strip_plot(tmp_path):
    path = performance_vs_noise(_scores(nu=2.0), tmp_path / "noise.png")
    assert path == tmp_path / "noise.png"
    _check_png(path)
    # no nu at all, or one cell only: still a figure
    no_nu = _scores().assign(noise_level=np.nan)
    _check_png(performance_vs_noise(no_nu, tmp_path / "none.png"))
    one = _scores(n_cells=2).query("cell == 'c0' and dataset == 'real-6f'")
    _check_png(performance_vs_noise(one, tmp_path / "one.png", n_bins=3))
    assert performance_vs_noise(_scores(), tmp_path / "x.png", metric="absent") is None
    _no_temp_files(tmp_path)


def test_boxplots_skip_absent_metrics_and_single_dataset(tmp_path):
    scores = _scores()
    one = scores[(scores["dataset"] == "real-6f") & scores["metric"].isin(["bias", "f1"])]
    path = metric_boxplots(one, tmp_path / "b.png", metrics=("corr_25hz", "bias", "f1"))
    _check_png(path)
    assert metric_boxplots(one, tmp_path / "c.png", metrics=("corr_25hz",)) is None
    assert not (tmp_path / "c.png").exists()


def test_many_methods_examples_stay_small(tmp_path):
    ex = _example(4)
    ex["estimates"] = {f"method-{i}": ex["estimates"]["oasis"] for i in range(9)}
    fig = figures._example_figure([ex, ex, ex, ex], max_methods=7, window_s=30.0, colors=None)
    assert len(fig.axes) == 3 * 8  # 3 examples at most; 1 trace row + 7 method rows
    img = _check_png(example_traces([ex], tmp_path / "e.png", max_methods=7))
    assert img.shape[0] > img.shape[1]  # one tall column


def test_method_colors_fixed_order():
    colors = method_colors(["b", "a", "b", "c"])
    assert list(colors) == ["b", "a", "c"]
    assert colors["b"][:3] == pytest.approx((0.12156862745098039, 0.4666666666666667,
                                             0.7058823529411765))  # tab10 blue
    assert len(set(method_colors([f"m{i}" for i in range(20)]).values())) == 20
