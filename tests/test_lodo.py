"""Leave-one-dataset-out evaluation: the leakage-free choice, the tables, the command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from test_readers import recording, write_cattached

from cabench.benchmark.lodo import (
    SMALL_GRID,
    grid_variants,
    select_variants,
    summarise,
    summary_markdown,
)
from cabench.simulators import simulate

PRESETS = ("GCaMP6f", "GCaMP6s", "jGCaMP8f")


def write_ground_truth(root: Path, recordings: int = 2) -> Path:
    """Three datasets of one-neuron recordings, one indicator preset each."""
    for d, preset in enumerate(PRESETS):
        for j in range(recordings):
            ts = simulate(preset=preset, cells=1, duration=20.0, rate=2.0, rate_sigma=0.3,
                          frame_rate=30.0, seed=10 * d + j, sigma=0.01)
            t0 = 3.0
            write_cattached(root / f"DS0{d + 1}-{preset}-sim" / f"cell{j}.mat", [recording(
                ts.times() + t0, ts.traces[0, 0], (ts.spikes(0, 0) + t0) * 1e4)])
    return root


@pytest.fixture(scope="module")
def gt_folder(tmp_path_factory) -> Path:
    return write_ground_truth(tmp_path_factory.mktemp("gt"))


def test_grid_variants_have_safe_unique_labels():
    labels = [m.label for _, m in grid_variants(SMALL_GRID)]
    assert len(labels) == len(set(labels))
    assert "oasis-ar1.default" in labels and "oasis-kernel.decay_s0.8.rise_s0" in labels
    assert len(labels) == 1 + 3 + 2 + 3


def test_choice_never_looks_at_the_held_out_dataset():
    rows = []
    # variant a: best on the held-out dataset DS1 only; variant b: best on the others
    for ds, a, b in (("DS1", 0.9, 0.1), ("DS2", 0.3, 0.5), ("DS3", 0.2, 0.6), ("DS4", 0.4, 0.3)):
        for variant, v in (("m.a", a), ("m.b", b)):
            rows.append(dict(dataset=ds, condition="native", method="m", variant=variant,
                             corr_25hz=v))
    # a tie on the other datasets goes to the first label; NaN scores rank last
    for ds in ("DS1", "DS2", "DS3"):
        rows += [dict(dataset=ds, condition="native", method="t", variant=v, corr_25hz=s)
                 for v, s in (("t.z", 0.5), ("t.y", 0.5), ("t.nan", float("nan")))]
    board = pd.DataFrame(rows)
    chosen = select_variants(board, "DS1").set_index("method")
    assert chosen.loc["m", "variant"] == "m.b"
    assert chosen.loc["m", "training_score"] == pytest.approx(0.5)
    assert chosen.loc["m", "n_training"] == 3
    assert chosen.loc["t", "variant"] == "t.y"
    # holding out DS4 instead: a wins on DS1, DS2... median of (0.9, 0.3, 0.2) = 0.3 < 0.5
    assert select_variants(board, "DS4").set_index("method").loc["m", "variant"] == "m.b"
    assert select_variants(board, "DS3").set_index("method").loc["m", "variant"] == "m.a"


def test_summary_reports_the_targets():
    table = pd.DataFrame([
        dict(dataset=d, condition="native", method=m, rank=r, n_cells=3, corr_25hz=c,
             corr_smoothed=s, error=0.0, bias=0.0)
        for d, m, r, c, s in (("A", "cnn", 1, 0.8, 0.7), ("A", "x-tuned", 2, 0.5, 0.9),
                              ("A", "y", 3, 0.1, 0.1), ("B", "cnn", 2, 0.4, 0.7),
                              ("B", "x-tuned", 1, 0.6, 0.9), ("B", "y", 3, float("nan"), 0.1))])
    s = summarise(table).set_index("method")
    # pairwise: cnn above x on A only, above y on both (a NaN score loses)
    assert s.loc["x-tuned", "cnn_better_on"] == 1 and s.loc["y", "cnn_better_on"] == 2
    assert s.loc["cnn", "cnn_better_on"] == 1
    assert "above each model-based method on at least 1;" in summary_markdown(s.reset_index())
    assert s.loc["cnn", "wins"] == 1 and s.loc["cnn", "win_fraction"] == 0.5
    assert s.loc["cnn", "corr_25hz"] == pytest.approx(0.6)
    # cnn 0.6 against 0.55 on corr_25hz, 0.7 against 0.9 on corr_smoothed
    assert s.loc["cnn", "cnn_beats_corr_25hz"] and s.loc["x-tuned", "cnn_beats_corr_25hz"]
    assert not s.loc["cnn", "cnn_beats_corr_smoothed"]
    assert not s.loc["x-tuned", "cnn_beats_corr_smoothed"]


def test_lodo_end_to_end(run, gt_folder, tmp_path):
    out = tmp_path / "lodo"
    args = ["lodo", "--ground-truth", gt_folder, "-o", out, "--grid", "small", "--train",
            "--epochs", 1, "--max-samples", 200, "--noise-levels", "1", "--ensemble-size", 1,
            "--smoothing", 0.025, "--inputs", "dff+innovation"]
    res = run(*args, "-q")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        f"DS0{d + 1}-{p}-sim" for d, p in enumerate(PRESETS)]
    recipe = json.loads((out / "models" / "DS01-GCaMP6f-sim" / "config.json").read_text())["recipe"]
    assert recipe["smoothing_s"] == 0.025 and recipe["epochs"] == 1
    assert recipe["inputs"] == "dff+innovation"
    for name in ("table.csv", "table.md", "summary.csv", "summary.md"):
        assert (out / name).is_file()
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == ["dataset", "condition", "method", "rank", "variant",
                                   "params", "n_cells", "corr_25hz", "corr_smoothed",
                                   "error", "bias"]
    assert set(table["condition"]) == {"native", "30Hz-nu2"}
    methods = {"cnn"} | {f"{m}-{s}" for m in SMALL_GRID for s in ("tuned", "default")}
    assert set(table["method"]) == methods
    assert len(table) == 3 * 2 * len(methods)
    assert table["corr_25hz"].notna().all() and (table["n_cells"] > 0).all()
    summ = pd.read_csv(out / "summary.csv")
    assert set(summ["method"]) == methods and (summ["n_datasets"] == 3).all()
    assert "cnn best on" in (out / "summary.md").read_text()
    # a re-run reuses the models and the cases and gives the same table
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "model exists, kept" in res.output and "cnn best on" in res.output
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv"), table)
    # the model-based rows of that table instead of the grid: the same table, no grid run
    res = run("lodo", "--ground-truth", gt_folder, "-o", tmp_path / "again", "--models",
              out / "models", "--baseline", out / "table.csv", "-q")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "again" / "grid").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "table.csv"), table)
    # two runs' fold models merged: an ensemble of two equal networks scores as one
    res = run("lodo", "--ground-truth", gt_folder, "-o", tmp_path / "merged", "--grid", "small",
              "--models", f"{out / 'models'},{out / 'models'}", "-q")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "merged" / "models" / "DS01-GCaMP6f-sim" / "config.json")
                     .read_text())
    assert cfg["recipe"]["ensemble_size"] == 2 and len(cfg["training"]["merged_from"]) == 2
    merged = pd.read_csv(tmp_path / "merged" / "table.csv")
    cols = ["corr_25hz", "corr_smoothed", "error", "bias"]
    pd.testing.assert_frame_equal(merged[cols], table[cols], rtol=1e-4)
    # merging again keeps the merged folders, so their cases stay reused
    weights = tmp_path / "merged" / "models" / "DS01-GCaMP6f-sim" / "weights.pt"
    before = weights.stat().st_mtime_ns
    res = run("lodo", "--ground-truth", gt_folder, "-o", tmp_path / "merged", "--grid", "small",
              "--models", f"{out / 'models'},{out / 'models'}", "-q")
    assert res.exit_code == 0, res.output
    assert weights.stat().st_mtime_ns == before
    # a fold model rewritten after its cases ran: only that fold's cnn cases run again
    logs = {p: p.stat().st_mtime_ns for p in (out / "folds").glob("*/cases/*/*/cnn/log.json")}
    assert len(logs) == 3 * 2 * 2  # 3 folds x 2 recordings x 2 conditions
    new = weights.stat().st_mtime_ns + 10**9
    os.utime(out / "models" / "DS01-GCaMP6f-sim" / "weights.pt", ns=(new, new))
    res = run(*args, "-q")
    assert res.exit_code == 0, res.output
    rerun = {p.parts[-6] for p, t in logs.items() if p.stat().st_mtime_ns != t}
    assert rerun == {"DS01-GCaMP6f-sim"}, rerun


@pytest.mark.parametrize("change, message", [
    ("missing-ground-truth", "does not exist"),
    ("missing-model", "no model folder for fold(s) DS02-GCaMP6s-sim"),
    ("no-models", "--models"),
    ("train-two-models", "--train takes at most one --models folder"),
    ("baseline-without-dataset", "the baseline table has no rows for DS02-GCaMP6s-sim"),
])
def test_lodo_errors_are_one_line(run, gt_folder, tmp_path, change, message):
    models = tmp_path / "models"
    for name in ("DS01-GCaMP6f-sim", "DS03-jGCaMP8f-sim"):
        (models / name).mkdir(parents=True)
        (models / name / "config.json").write_text("{}")
    args = ["lodo", "--ground-truth", gt_folder, "-o", tmp_path / "out", "--models", models]
    if change == "missing-ground-truth":
        args[2] = tmp_path / "nothing"
    if change == "no-models":
        args = args[:-2]
    if change == "train-two-models":
        args[-1] = f"{models},{models}"
        args.append("--train")
    if change == "baseline-without-dataset":
        (models / "DS02-GCaMP6s-sim").mkdir()
        (models / "DS02-GCaMP6s-sim" / "config.json").write_text("{}")
        pd.DataFrame([dict(dataset=d, condition="native", method="wiener-tuned", variant="w",
                           params="{}", n_cells=1, corr_25hz=0.5, corr_smoothed=0.5, error=1.0,
                           bias=0.0) for d in ("DS01-GCaMP6f-sim", "DS03-jGCaMP8f-sim")]
                     ).to_csv(tmp_path / "t.csv", index=False)
        args += ["--baseline", tmp_path / "t.csv"]
    res = run(*args, "-q")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert message in res.output, res.output
    assert not (tmp_path / "out").exists()
