"""Suite runner: end to end on a tiny simulated suite, caching, failures, parallel, validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cabench.benchmark import suite as S
from cabench.benchmark.methods import Derivative
from cabench.errors import CabenchError

TINY = """
name = "tiny"

[[datasets]]
name = "sim"
simulate = { preset = "GCaMP6f", cells = 4, duration = 30, noise = 2, seed = 3 }

[[methods]]
name = "derivative"

[[methods]]
name = "oasis-ar1"

[metrics]
bin_s = 0.04
"""


def _suite(tmp_path, text=TINY):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return S.load_suite(path)


def _case_dir(out, method):
    return out / "cases" / "sim" / "all" / method


def test_end_to_end(tmp_path):
    out = tmp_path / "out"
    events = []
    scores = S.run_suite(_suite(tmp_path), out, progress=lambda *a: events.append(a))
    assert [e[:2] for e in events] == [(1, 2), (2, 2)]
    for name in ("scores.csv", "leaderboard.csv", "leaderboard.md"):
        assert (out / name).is_file()
    for m in ("derivative", "oasis-ar1"):
        d = _case_dir(out, m)
        for name in ("params.json", "log.json", "estimate.npy", "scores.csv"):
            assert (d / name).is_file()
        log = json.loads((d / "log.json").read_text())
        assert log["status"] == "ok" and log["seconds"] >= 0
        params = json.loads((d / "params.json").read_text())
        assert params["method"] == m and "cabench" in params["versions"]
        assert np.load(d / "estimate.npy").shape == (1, 4, 900)
    assert list(scores.columns) == list(S.SCORE_COLUMNS)
    # tidy and complete: every cell x method x metric once, no failures
    n_metrics = scores["metric"].nunique()
    assert len(scores) == 4 * 2 * n_metrics
    assert not scores.duplicated(["dataset", "recording", "cell", "method", "metric"]).any()
    assert (scores["status"] == "ok").all() and (scores["source"] == "simulated").all()
    assert scores.loc[scores.metric == "corr_25hz", "value"].notna().all()
    on_disk = pd.read_csv(out / "scores.csv", dtype={"cell": str, "recording": str})
    pd.testing.assert_frame_equal(on_disk, scores, check_dtype=False)
    # leaderboard: medians of scores.csv, rank by median corr_25hz
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == 2 and set(board["n_cells"]) == {4}
    for row in board.itertuples():
        cells = scores[(scores.method == row.method) & (scores.metric == "corr_25hz")]
        assert row.corr_25hz == pytest.approx(cells["value"].median())
    best = board.loc[board["corr_25hz"].idxmax()]
    assert best["rank"] == 1 and sorted(board["rank"]) == [1, 2]
    md = (out / "leaderboard.md").read_text()
    assert md == S.format_leaderboard(out) == S.format_leaderboard(out / "scores.csv")
    packed = tmp_path / "packed"  # committed results keep the scores gzipped
    packed.mkdir()
    scores.to_csv(packed / "scores.csv.gz", index=False)
    assert S.format_leaderboard(packed) == md
    assert md.startswith("## Across datasets") and "| dataset | method | rank |" in md
    assert len(md.splitlines()) == 2 * (2 + 2 + 2) + 1  # 2 x (heading, blank, 2+2 rows)
    # summary across datasets: one dataset, so the medians are the leaderboard's
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc[best["method"], "wins"] == 1 and summary["n_datasets"].eq(1).all()
    assert summary.loc[best["method"], "corr_25hz"] == pytest.approx(best["corr_25hz"])
    assert (scores["condition"] == "native").all()


def test_reuse_and_force(tmp_path, monkeypatch):
    suite = _suite(tmp_path)
    out = tmp_path / "out"
    calls = []
    real = S._run_case
    monkeypatch.setattr(S, "_run_case", lambda case, ts: calls.append(case.label) or real(case, ts))
    first = S.run_suite(suite, out)
    assert len(calls) == 2
    log = (_case_dir(out, "derivative") / "log.json").read_bytes()
    second = S.run_suite(suite, out)
    assert len(calls) == 2  # all reused
    assert (_case_dir(out, "derivative") / "log.json").read_bytes() == log
    pd.testing.assert_frame_equal(first, second)
    S.run_suite(suite, out, force=True)
    assert len(calls) == 4
    # changed method parameters are not mistaken for the cached case
    changed = _suite(tmp_path, TINY.replace(
        'name = "oasis-ar1"', 'name = "oasis-ar1"\nparams = { align = false }'))
    S.run_suite(changed, out)
    assert calls[-1].endswith("oasis-ar1") and len(calls) == 5


def test_rewritten_trace_file_is_scored_again(tmp_path, monkeypatch):
    # the same path with new traces (e.g. regenerated GAN twins) must not reuse old scores
    from cabench.simulators import simulate

    path = tmp_path / "traces.h5"
    simulate(preset="GCaMP6f", cells=3, duration=20, noise=1.0, seed=1).save(path)
    suite = _suite(tmp_path, f'name = "t"\n[[datasets]]\nname = "f"\npath = "{path}"\n'
                             '[[methods]]\nname = "derivative"\n')
    out = tmp_path / "out"
    calls = []
    real = S._run_case
    monkeypatch.setattr(S, "_run_case", lambda case, ts: calls.append(case.label) or real(case, ts))
    first = S.run_suite(suite, out)
    S.run_suite(suite, out)
    assert len(calls) == 1  # unchanged file: reused
    simulate(preset="GCaMP6f", cells=3, duration=20, noise=1.0, seed=2).save(path, overwrite=True)
    second = S.run_suite(suite, out)
    assert len(calls) == 2
    assert not np.allclose(first["value"].to_numpy(float), second["value"].to_numpy(float),
                           equal_nan=True)


def test_failure_is_recorded(tmp_path, monkeypatch):
    def boom(self, traces, frame_rate=None):
        raise RuntimeError("deliberate failure")

    monkeypatch.setattr(Derivative, "infer", boom)
    suite = _suite(tmp_path)
    out = tmp_path / "out"
    scores = S.run_suite(suite, out)
    log = json.loads((_case_dir(out, "derivative") / "log.json").read_text())
    assert log["status"] == "failed"
    assert "deliberate failure" in log["error"] and "Traceback" in log["traceback"]
    failed = scores[scores.method == "derivative"]
    assert len(failed) > 0 and (failed.status == "failed").all() and failed.value.isna().all()
    assert (scores[scores.method == "oasis-ar1"].status == "ok").all()
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["derivative", "rank"] == 2 and board.loc["derivative", "n_failed"] == 1
    # failed cases are kept unless asked to re-run them
    monkeypatch.undo()
    S.run_suite(suite, out)
    assert json.loads((_case_dir(out, "derivative") / "log.json").read_text())["status"] == (
        "failed")
    scores = S.run_suite(suite, out, rerun_failed=True)
    assert (scores.status == "ok").all()


def test_parallel_matches_serial(tmp_path):
    suite = _suite(tmp_path, TINY.replace("cells = 4", "cells = 3") + """
[[datasets]]
name = "sim2"
simulate = { preset = "GCaMP6s", cells = 3, duration = 30, noise = 3, seed = 4 }
""")
    serial = S.run_suite(suite, tmp_path / "a", jobs=1)
    parallel = S.run_suite(suite, tmp_path / "b", jobs=2)
    pd.testing.assert_frame_equal(serial.drop(columns="seconds"),
                                  parallel.drop(columns="seconds"))
    for d in ("a", "b"):
        assert (tmp_path / d / "leaderboard.md").is_file()
    a = pd.read_csv(tmp_path / "a" / "leaderboard.csv").drop(columns=[])
    b = pd.read_csv(tmp_path / "b" / "leaderboard.csv")
    pd.testing.assert_frame_equal(a, b)


def test_path_dataset_relative_to_suite_and_data_root(tmp_path):
    from cabench.simulators.pipeline import Simulation

    data = tmp_path / "data"
    data.mkdir()
    Simulation(dict(cells=2, duration=20, seed=5)).write(data / "rec.h5")
    text = TINY.split("[[methods]]")[0].replace(
        'simulate = { preset = "GCaMP6f", cells = 4, duration = 30, noise = 2, seed = 3 }',
        'path = "rec.h5"\nsource = "gan"') + '[[methods]]\nname = "derivative"\n'
    path = tmp_path / "suite.toml"
    path.write_text(text)
    suite = S.load_suite(path, data_root=data)
    assert suite.datasets[0].path == str(data / "rec.h5")
    (tmp_path / "rec.h5").write_bytes((data / "rec.h5").read_bytes())
    assert S.load_suite(path).datasets[0].path == str(tmp_path / "rec.h5")
    scores = S.run_suite(suite, tmp_path / "out")
    assert (scores.source == "gan").all() and (scores.status == "ok").all()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('name = "tiny"', 'name = "tiny"\ncolour = 1'),
         "unknown key(s) colour; valid: name"),
        (lambda t: t.replace("seed = 3 }", "seed = 3 }\nfps = 3"),
         "unknown key(s) fps; valid: name, path, simulate"),
        (lambda t: t.replace('name = "derivative"', 'name = "derivative"\nparam = {}'),
         "unknown key(s) param; valid: name, label, params"),
        (lambda t: t.replace('name = "derivative"', 'name = "no-such-method"'),
         "unknown method 'no-such-method'; available: oasis-ar1"),
        (lambda t: t.replace("bin_s", "bins"), "unknown key(s) bins; valid: bin_s"),
        (lambda t: t.replace("seed = 3", "seed = 3, colour = 2"),
         "simulate: unknown parameter(s) colour"),
        (lambda t: t.replace(
            'simulate = { preset = "GCaMP6f", cells = 4, duration = 30, noise = 2, seed = 3 }',
            'path = "missing.h5"'), "dataset path 'missing.h5' not found (tried: "),
        (lambda t: t + '\n[[methods]]\nname = "derivative"\n', "listed twice"),
        (lambda t: t.replace('name = "sim"', 'name = "a/b"'), "must be a non-empty string"),
        (lambda t: t.replace("seed = 3 }", "seed = 3 }\nresample = -30"),
         "resample must be a positive number (Hz)"),
        (lambda t: t.replace("seed = 3 }", "seed = 3 }\nnoise = \"high\""),
         "noise must be a positive number"),
        (lambda t: t.replace("seed = 3 }", "seed = 3 }\nseed = 1.5"), "seed must be an integer"),
    ],
)
def test_bad_suites(tmp_path, edit, message):
    with pytest.raises(CabenchError) as e:
        _suite(tmp_path, edit(TINY))
    assert message in str(e.value)


def test_missing_suite_file_and_leaderboard(tmp_path):
    with pytest.raises(CabenchError, match="no such suite file"):
        S.load_suite(tmp_path / "nope.toml")
    with pytest.raises(CabenchError, match="no scores.csv"):
        S.format_leaderboard(tmp_path)


def test_default_suite_is_valid():
    suite = S.default_suite()
    assert len(suite.datasets) == 6 and suite.methods
    assert all(d.simulate["seed"] is not None for d in suite.datasets)


CONDITIONS = """
name = "conditions"

[[datasets]]
name = "native"
simulate = { preset = "jGCaMP8f", cells = 3, duration = 40, noise = 1, seed = 2 }

[[datasets]]
name = "slow-noisy"
simulate = { preset = "jGCaMP8f", cells = 3, duration = 40, noise = 1, seed = 2 }
resample = 20.0
noise = 3.0

[[datasets]]
name = "too-clean"
simulate = { preset = "jGCaMP8f", cells = 3, duration = 40, noise = 1, seed = 2 }
noise = 0.5

[[methods]]
name = "oasis-kernel"

[[methods]]
name = "oasis-kernel"
label = "kernel-6s"
params = { indicator = "GCaMP6s" }
"""


def test_conditions_noise_levels_and_indicators(tmp_path):
    out = tmp_path / "out"
    scores = S.run_suite(_suite(tmp_path, CONDITIONS), out)
    nu = scores.groupby("dataset")["noise_level"].median()
    condition = scores.groupby("dataset")["condition"].first()
    assert condition["native"] == "native" and condition["slow-noisy"] == "20Hz-nu3"
    assert nu["native"] == pytest.approx(1.0, rel=0.05)
    assert nu["slow-noisy"] == pytest.approx(3.0, rel=0.02)  # matched after resampling
    assert "too-clean" not in nu  # every cell is noisier than nu 0.5: no case at all
    excluded = pd.read_csv(out / "excluded.csv")
    assert (excluded["dataset"] == "too-clean").all() and len(excluded) == 3
    assert (excluded["nu"] > 0.5).all()
    estimate = np.load(out / "cases" / "slow-noisy" / "all" / "oasis-kernel" / "estimate.npy")
    assert estimate.shape == (1, 3, 800)  # 40 s at 20 Hz
    # indicator-aware methods get the data's indicator unless the suite sets it
    for label, indicator in (("oasis-kernel", "jGCaMP8f"), ("kernel-6s", "GCaMP6s")):
        params = json.loads((out / "cases" / "native" / "all" / label / "params.json")
                            .read_text())
        assert params["resolved_params"]["indicator"] == indicator
    board = pd.read_csv(out / "leaderboard.csv").set_index(["dataset", "method"])
    assert board.loc[("slow-noisy", "oasis-kernel"), "noise_level"] == pytest.approx(3.0,
                                                                                     rel=0.02)
    # the right kernel scores better than the wrong one on fast jGCaMP8f
    assert (board.loc[("native", "oasis-kernel"), "corr_25hz"]
            > board.loc[("native", "kernel-6s"), "corr_25hz"])
    for name in ("metrics_boxplot.png", "noise_dependence.png", "example_traces.png"):
        assert (out / "figures" / name).stat().st_size > 1000


def test_inferred_spikes_on_the_recordings_clock(tmp_path):
    # frames really come at 29.7 Hz; methods count time as k / frame_rate from the first frame
    frame_times = 5.0 + np.arange(9000) / 29.7
    mapped = S.on_clock(np.array([0.0, 100 / 29.7, 8999 / 29.7, 9000.5 / 29.7]), 29.7,
                         frame_times)
    np.testing.assert_allclose(mapped, [5.0, frame_times[100], frame_times[-1],
                                        5.0 + 9000.5 / 29.7])
    # a recording whose nominal rate (median interval) is off its mean rate
    from cabench.simulators.pipeline import Simulation
    from cabench.traceset import TraceSet

    ts = Simulation(dict(preset="jGCaMP8f", cells=2, duration=300, noise=1, seed=9)).run()
    drift = ts.times() * 1.01  # the clock runs 1 % slow: 3 s behind at the end
    shifted = TraceSet(ts.traces, ts.frame_rate, ts.spike_times * 1.01, ts.spike_offsets,
                       frame_times=drift)
    shifted.save(tmp_path / "rec.h5")
    text = ('[[datasets]]\nname = "drift"\npath = "rec.h5"\n'
            '[[methods]]\nname = "oasis-kernel"\n')
    scores = S.run_suite(_suite(tmp_path, text), tmp_path / "out", figures=False)
    f1 = scores[scores.metric == "f1"]["value"]
    assert (f1 > 0.5).all()
    assert not (tmp_path / "out" / "figures").exists()


def test_dask_cluster_matches_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    suite = _suite(tmp_path, TINY.replace("cells = 4", "cells = 3") + """
[[datasets]]
name = "sim2"
simulate = { preset = "GCaMP6s", cells = 3, duration = 30, noise = 3, seed = 4 }
resample = 20.0
noise = 4.0
""")
    serial = S.run_suite(suite, tmp_path / "a", figures=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = S.run_suite(suite, tmp_path / "b", scheduler=cluster.scheduler_address,
                              figures=False)
    pd.testing.assert_frame_equal(serial.drop(columns="seconds"),
                                  on_dask.drop(columns="seconds"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "leaderboard.csv"),
                                  pd.read_csv(tmp_path / "b" / "leaderboard.csv"))


def test_reading_all_scores_at_once_equals_reading_each_case(tmp_path):
    """The joined-text reader gives the same frame as reading case by case, including cases
    it must read alone: a quoted cell name, an empty file, a missing file, an old layout."""
    def case(name, cond=None):
        d = S.DatasetSpec(name=f"d{cond or ''}", path="x", resample=cond)
        return S.Case(d, "rec", 0, S.MethodSpec("m"), {}, tmp_path / name)

    def rows(cell, value):
        return pd.DataFrame([dict(dataset="d", source="real", recording="007", cell=cell,
                                  noise_level=1.5, method="m", metric=k, value=v,
                                  seconds=0.1, status="ok")
                             for k, v in (("corr_25hz", value), ("bias", float("nan")))])

    cases = [case("a"), case("b", 30.0), case("c"), case("d"), case("e"), case("f"),
             case("g", 30.0)]
    for c, (cell, value) in zip(cases, [("1", 0.5), ("", 0.25), ("x,y", 0.75)], strict=False):
        c.folder.mkdir()
        rows(cell, value)[list(S.CASE_COLUMNS)].to_csv(c.folder / "scores.csv", index=False)
    cases[3].folder.mkdir()
    (cases[3].folder / "scores.csv").write_text("")
    cases[5].folder.mkdir()
    rows("2", 0.1).drop(columns="seconds").to_csv(cases[5].folder / "scores.csv", index=False)
    cases[6].folder.mkdir()
    rows("3", 0.9)[list(S.CASE_COLUMNS)].to_csv(cases[6].folder / "scores.csv", index=False)
    one_by_one = pd.concat([S._read_case_scores(c) for c in cases], ignore_index=True)
    joined = S._read_scores(cases)
    pd.testing.assert_frame_equal(joined, one_by_one)
    assert joined["cell"].tolist()[:6] == ["1", "1", "", "", "x,y", "x,y"]
    assert joined["recording"].iloc[0] == "007"
    assert joined["condition"].tolist()[2] == "30Hz"


def test_leaderboard_of_many_datasets_without_failures():
    """More than 127 datasets and no failed case: the per-pair counts still line up (pandas
    cannot reindex between categorical indexes whose codes differ in width)."""
    rows = [dict(dataset=f"d{d:03d}", source="real", condition="native", recording="r",
                 cell=str(c), noise_level=1.0 + d, method=m, metric=k,
                 value=(d + c) / 1000 if m == "a" else 0.0, seconds=0.1, status="ok")
            for d in range(130) for c in range(d % 3 + 1) for m in ("a", "b")
            for k in ("corr_25hz", "bias")]
    board = S.leaderboard(pd.DataFrame(rows))
    assert len(board) == 260 and (board["n_failed"] == 0).all()
    a = board[board["method"] == "a"].set_index("dataset")
    assert a.loc["d129", "n_cells"] == 129 % 3 + 1 and a.loc["d129", "noise_level"] == 130.0
    assert (a["rank"] == 1).all()
