"""Validity study: rank agreement between synthetic and real data, and the end-to-end run."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr
from test_readers import recording, write_cattached

from cabench.benchmark import validity as V
from cabench.cli import main
from cabench.conditions import band_limit
from cabench.noise_level import noise_level_nu
from cabench.readers import read_cascade_folder
from cabench.simulators import simulate
from cabench.traceset import TraceSet

METHODS = ["m1", "m2", "m3", "m4", "m5"]
QUALITY = np.array([0.9, 0.7, 0.5, 0.3, 0.1])  # m1 best


def make_frame(synthetic: dict[str, callable], datasets: int = 3, units: int = 8,
               noise: float = 0.05, seed: int = 0, recordings: int = 2) -> pd.DataFrame:
    """Tidy scores: real corr_25hz = quality + noise, van_rossum = 1 - corr; each synthetic
    source's value is ``fn(real_value, rng)`` per cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(datasets):
        for u in range(units):
            for r in range(recordings):
                real = QUALITY + noise * rng.standard_normal(QUALITY.size)
                values = {"real": real, **{s: fn(real, rng) for s, fn in synthetic.items()}}
                for source, v in values.items():
                    for m, x in zip(METHODS, v, strict=True):
                        for metric, y in (("corr_25hz", x), ("van_rossum", 1 - x)):
                            rows.append(dict(source=source, dataset=f"D{d}", unit=f"u{u}",
                                             recording=f"u{u}_{r}", method=m, metric=metric,
                                             value=y))
    return pd.DataFrame(rows)


def rows(table: pd.DataFrame, **where) -> pd.DataFrame:
    mask = np.ones(len(table), bool)
    for k, v in where.items():
        mask &= table[k] == v
    return table[mask]


def test_identical_rankings_give_rho_one_with_collapsed_intervals():
    t = V.spearman_table(make_frame({"simulated": lambda x, r: x.copy()}), n_boot=200)
    assert set(t["source"]) == {"simulated"}
    assert set(t["scope"]) == {"dataset", "overall-pooled", "overall-mean"}
    assert len(rows(t, scope="dataset")) == 2 * 3  # metrics x datasets
    np.testing.assert_allclose(t[["rho", "ci_low", "ci_high"]].to_numpy(float), 1.0)
    assert (t["n_boot_valid"] == 200).all() and (t["n_methods"] == 5).all()
    assert (rows(t, scope="dataset")["n_resampled"] == 8).all()  # units, not recordings
    assert (rows(t, scope="overall-pooled")["n_resampled"] == 3).all()


def test_reversed_rankings_give_minus_one():
    t = V.spearman_table(make_frame({"simulated": lambda x, r: -x}), n_boot=100)
    np.testing.assert_allclose(t["rho"].to_numpy(float), -1.0)
    np.testing.assert_allclose(t[["ci_low", "ci_high"]].to_numpy(float), -1.0)


def test_point_estimates_are_spearman_of_the_medians_and_intervals_contain_them():
    noisy = {"simulated": lambda x, r: x[::-1] * 0.3 + x * 0.7 + 0.3 * r.standard_normal(5),
             "gan": lambda x, r: x + 0.05 * r.standard_normal(5)}
    frame = make_frame(noisy, noise=0.2)
    t = V.spearman_table(frame, n_boot=200, seed=1)
    med = frame.groupby(["metric", "dataset", "source", "method"])["value"].median()
    for _, r in rows(t, scope="dataset").iterrows():
        if r["source"] == V.DIFFERENCE:
            continue
        real = med.loc[(r["metric"], r["dataset"], "real")]
        other = med.loc[(r["metric"], r["dataset"], r["source"])]
        assert r["rho"] == pytest.approx(spearmanr(real, other).statistic)
    # pooled overall: ranking of the median across datasets of the dataset medians
    pooled = med.groupby(["metric", "source", "method"]).median()
    r = rows(t, scope="overall-pooled", metric="corr_25hz", source="simulated").iloc[0]
    assert r["rho"] == pytest.approx(spearmanr(pooled.loc[("corr_25hz", "real")],
                                               pooled.loc[("corr_25hz", "simulated")]).statistic)
    mean = rows(t, scope="dataset", metric="corr_25hz", source="gan")["rho"].mean()
    assert rows(t, scope="overall-mean", metric="corr_25hz", source="gan")["rho"].iloc[0] == \
        pytest.approx(mean)
    finite = t.dropna(subset=["ci_low"])
    assert len(finite) > 10
    assert (finite["ci_low"] <= finite["rho"] + 1e-12).all()
    assert (finite["rho"] <= finite["ci_high"] + 1e-12).all()
    assert (finite["ci_low"] < finite["ci_high"]).any()  # not all collapsed
    again = V.spearman_table(frame, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(t, again)
    other = V.spearman_table(frame, n_boot=200, seed=2)
    assert not np.allclose(other["ci_low"].to_numpy(float), t["ci_low"].to_numpy(float),
                           equal_nan=True)
    np.testing.assert_allclose(other["rho"].to_numpy(float), t["rho"].to_numpy(float))


def test_gan_better_than_simulated_is_stated_and_the_difference_is_paired():
    sources = {"simulated": lambda x, r: r.permutation(x),
               "gan": lambda x, r: x + 0.02 * r.standard_normal(5)}
    t = V.spearman_table(make_frame(sources, datasets=6), n_boot=300)
    d = rows(t, scope="overall-pooled", metric="corr_25hz", source=V.DIFFERENCE).iloc[0]
    g = rows(t, scope="overall-pooled", metric="corr_25hz", source="gan").iloc[0]
    s = rows(t, scope="overall-pooled", metric="corr_25hz", source="simulated").iloc[0]
    assert d["rho"] == pytest.approx(g["rho"] - s["rho"])
    assert g["rho"] > 0.9 and d["ci_low"] > 0
    text = V.finding(t)
    assert "GAN rankings agree with the real ranking better than simulated ones" in text
    assert f"{g['rho']:.2f} [{g['ci_low']:.2f}, {g['ci_high']:.2f}] (GAN)" in text
    assert "includes 0" not in text and "over 6 datasets" in text
    # two equally good sources: no winner is named
    alike = {"simulated": lambda x, r: x + 0.02 * r.standard_normal(5),
             "gan": lambda x, r: x + 0.02 * r.standard_normal(5)}
    text = V.finding(V.spearman_table(make_frame(alike, datasets=6), n_boot=300))
    assert "about equally well" in text and "includes 0" in text and "better" not in text
    only_sim = V.spearman_table(make_frame({"simulated": lambda x, r: -x}), n_boot=50)
    assert "simulated rankings are the reverse of the real ranking" in V.finding(only_sim)


def test_a_dataset_without_a_source_is_left_out_of_that_comparison():
    frame = make_frame({"simulated": lambda x, r: x.copy(), "gan": lambda x, r: x.copy()})
    frame = frame[~((frame["dataset"] == "D1") & (frame["source"] == "simulated"))]
    t = V.spearman_table(frame, n_boot=50)
    per = rows(t, scope="dataset", metric="corr_25hz")
    assert set(per.loc[per["source"] == "gan", "dataset"]) == {"D0", "D1", "D2"}
    assert set(per.loc[per["source"] == "simulated", "dataset"]) == {"D0", "D2"}
    assert set(per.loc[per["source"] == V.DIFFERENCE, "dataset"]) == {"D0", "D2"}
    assert (rows(t, scope="overall-pooled")["n_resampled"] == 2).all()


def test_rankings_use_the_direction_of_each_metric():
    frame = make_frame({"simulated": lambda x, r: -x}, noise=0.0)
    r = V.rankings(frame).set_index(["metric", "dataset", "source", "method"])["rank"]
    assert r.loc[("corr_25hz", "D0", "real", "m1")] == 1
    assert r.loc[("van_rossum", "D0", "real", "m1")] == 1  # lowest distance
    assert r.loc[("corr_25hz", "D0", "simulated", "m1")] == 5
    assert r.loc[("corr_25hz", V.ALL, "real", "m5")] == 5


def test_vectorised_spearman_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, (200, 6)).astype(float)  # many ties
    b = rng.standard_normal((200, 6))
    a[5, 2] = np.nan
    b[7, :4] = np.nan  # too few methods left
    got = V._spearman_rows(a, b)
    want = [V.spearman(x, y) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert np.isnan(got[7])


# --- end to end ---------------------------------------------------------------------------------
E2E_METHODS = "oasis-ar1,derivative,wiener"


def write_ground_truth(root: Path) -> Path:
    """Two datasets with presets and one without (Cal520), two neurons each."""
    for d, preset in enumerate(("GCaMP6f", "GCaMP6s", "GCaMP6f")):
        name = f"DS0{d + 1}-{'Cal520' if d == 2 else preset}-m-sim"
        for j in range(2):
            ts = simulate(preset=preset, cells=1, duration=20.0, rate=2.0, rate_sigma=0.3,
                          frame_rate=30.0, seed=10 * d + j, noise=1.0 + j)
            t0 = 1.0
            write_cattached(root / name / f"cell{j}.mat", [recording(
                ts.times() + t0, ts.traces[0, 0], (ts.spikes(0, 0) + t0) * 1e4)])
    return root


@pytest.fixture
def fake_gan(monkeypatch):
    calls = []

    def generate_traces(run_dir, spikes, seed=0, batch_size=64, device="auto", indicator=None,
                        noise_level=None, bandwidth_hz=None):
        calls.append(dict(run=Path(run_dir), indicator=indicator, noise_level=noise_level,
                          frame_rate=spikes.frame_rate, spikes_indicator=spikes.indicator,
                          bandwidth_hz=bandwidth_hz))
        rng = np.random.default_rng(seed)
        traces = spikes.traces + 0.01 * rng.standard_normal(spikes.traces.shape)
        if bandwidth_hz is not None:
            traces = band_limit(traces, spikes.frame_rate, bandwidth_hz)
        return TraceSet(traces, spikes.frame_rate, source="gan")

    module = types.ModuleType("cabench.generators.conditional_train")
    module.generate_traces = generate_traces
    monkeypatch.setitem(sys.modules, "cabench.generators.conditional_train", module)
    return calls


def test_end_to_end_with_a_fake_gan(tmp_path, fake_gan):
    gt = write_ground_truth(tmp_path / "gt")
    run_dir = tmp_path / "gan-run"
    run_dir.mkdir()
    (run_dir / "weights.pt").write_bytes(b"fake")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "validity", "--ground-truth", str(gt), "--gan", str(run_dir), "--methods", E2E_METHODS,
        "--frame-rate", "25", "--n-boot", "50", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Ranked by corr_25hz" in result.output
    for name in ("rankings.csv", "spearman.csv", "summary.md", "spearman.png", "sources.csv",
                 "skipped.csv"):
        assert (out / name).is_file(), name
    index = pd.read_csv(out / "sources.csv")
    counts = index.groupby("source").size().to_dict()
    assert counts == {"real": 6, "gan": 6, "simulated": 4}  # Cal520 has no preset
    # the twins: same spikes and frames; simulated nu matches the real cell's
    ratios = []
    for rec in index[index["source"] == "simulated"].itertuples():
        real = TraceSet.load(index[(index["source"] == "real")
                                   & (index["suite_name"] == f"real.{rec.dataset}."
                                      f"{rec.recording}")]["path"].iloc[0])
        sim = TraceSet.load(rec.path)
        np.testing.assert_array_equal(sim.spike_times, real.spike_times)
        np.testing.assert_array_equal(sim.times(), real.times())
        assert real.frame_rate == pytest.approx(25.0, rel=1e-3)
        ratios.append(noise_level_nu(sim.traces, sim.frame_rate)[0]
                      / noise_level_nu(real.traces, real.frame_rate)[0])
        assert rec.noise_level == pytest.approx(noise_level_nu(sim.traces, sim.frame_rate)[0])
    # matched, except where the twin's own signal is noisier than the real nu (then above)
    assert min(ratios) > 0.95 and sum(abs(r - 1) < 0.05 for r in ratios) >= 3
    assert len(fake_gan) == 6
    assert {c["spikes_indicator"] for c in fake_gan} == {"GCaMP6f", "GCaMP6s", "Cal520"}
    assert all(c["indicator"] is None for c in fake_gan)  # the GAN maps spikes.indicator
    assert all(isinstance(c["noise_level"], float) and c["noise_level"] > 0 for c in fake_gan)
    assert all(c["frame_rate"] == pytest.approx(25.0, rel=1e-3) for c in fake_gan)
    assert all(c["bandwidth_hz"] is None for c in fake_gan)  # 30 Hz down to 25 Hz: full band
    real_nu = index.loc[index["source"] == "real", "noise_level"]
    np.testing.assert_allclose(sorted(c["noise_level"] for c in fake_gan), sorted(real_nu),
                               rtol=1e-6)
    spear = pd.read_csv(out / "spearman.csv")
    per = spear[(spear["scope"] == "dataset") & (spear["metric"] == "corr_25hz")]
    assert set(per.loc[per["source"] == "gan", "dataset"]) == {
        "DS01-GCaMP6f-m-sim", "DS02-GCaMP6s-m-sim", "DS03-Cal520-m-sim"}
    assert (per["n_methods"] == 3).all()
    ranks = pd.read_csv(out / "rankings.csv")
    assert set(ranks["method"]) == set(E2E_METHODS.split(","))
    summary = (out / "summary.md").read_text()
    assert "## Finding" in summary and "Cal520" in summary
    noisier = sum(r > 1.05 for r in ratios)
    assert f"simulated twins noisier than their real recording (nu > 1.05 x real): {noisier} " \
        "of 4" in summary
    # a second run reuses the trace files and the scored cases
    stamp = {p: p.stat().st_mtime_ns for p in (out / "sources").rglob("*.h5")}
    spear2 = V.run_study(gt, out, frame_rate=25.0, gan_run=run_dir,
                         methods=E2E_METHODS.split(","), n_boot=50, figure=False)
    assert len(fake_gan) == 6
    assert stamp == {p: p.stat().st_mtime_ns for p in (out / "sources").rglob("*.h5")}
    pd.testing.assert_frame_equal(spear2.reset_index(drop=True), spear, check_dtype=False)


def test_twins_of_recordings_resampled_up_get_their_bandwidth_and_native_noise(tmp_path,
                                                                               fake_gan):
    gt = write_ground_truth(tmp_path / "gt")
    folders = sorted(p for p in gt.iterdir() if p.name.startswith("DS01"))
    run_dir = tmp_path / "gan-run"
    run_dir.mkdir()
    (run_dir / "weights.pt").write_bytes(b"fake")
    index, _ = V.build_sources(folders, tmp_path / "cache", frame_rate=60.0, gan_run=run_dir)
    natives = [ts for f in folders for ts in read_cascade_folder(f)]
    assert [c["bandwidth_hz"] for c in fake_gan] == pytest.approx([15.0, 15.0], rel=1e-3)
    assert [c["noise_level"] for c in fake_gan] == pytest.approx(
        [float(noise_level_nu(ts.traces, ts.frame_rate)[0]) for ts in natives])
    for source in ("simulated", "gan"):
        for rec in index[index["source"] == source].itertuples():
            real = TraceSet.load(index[index["suite_name"] == rec.suite_name.replace(
                source, "real", 1)]["path"].iloc[0])
            twin = TraceSet.load(rec.path)
            assert twin.frame_rate == pytest.approx(60.0, rel=1e-3)
            for x in (real, twin):
                y = x.traces[0, 0] - x.traces[0, 0].mean()
                power = np.abs(np.fft.rfft(y)) ** 2
                above = np.fft.rfftfreq(y.size, 1 / x.frame_rate) > 15.5
                assert power[above].sum() < 1e-3 * power.sum(), (source, x.source)
            if source == "simulated":  # white noise at 60 Hz would be ~2x the real nu here
                ratio = noise_level_nu(twin.traces, 60.0)[0] / noise_level_nu(real.traces,
                                                                              60.0)[0]
                assert 0.8 < ratio < 1.25, ratio


def test_command_errors_are_one_line(tmp_path):
    gt = write_ground_truth(tmp_path / "gt")
    r = CliRunner().invoke(main, ["validity", "--ground-truth", str(gt), "--methods",
                                  "oasis-ar1,derivative", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "at least 3 methods" in r.output
    r = CliRunner().invoke(main, ["validity", "--ground-truth", str(gt), "--methods",
                                  "oasis-ar1,nope,wiener", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown method 'nope'" in r.output
    r = CliRunner().invoke(main, ["validity", "--ground-truth", str(gt), "--gan",
                                  str(tmp_path / "missing"), "--methods", E2E_METHODS,
                                  "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_sources_are_rebuilt_only_when_their_parameters_change(tmp_path):
    gt = write_ground_truth(tmp_path / "gt")
    folders = sorted(p for p in gt.iterdir() if p.name.startswith(("DS01", "DS03")))
    cache = tmp_path / "cache"
    index, skipped = V.build_sources(folders, cache, frame_rate=25.0, seed=0)
    assert set(index["source"]) == {"real", "simulated"}
    assert list(skipped["source"]) == ["simulated"] and "Cal520" in skipped["reason"].iloc[0]

    def stamps(source):
        return {p: p.stat().st_mtime_ns for p in (cache / source).rglob("*.h5")}

    real, sim = stamps("real"), stamps("simulated")
    first = TraceSet.load(index[index["source"] == "simulated"]["path"].iloc[0])
    again, _ = V.build_sources(folders, cache, frame_rate=25.0, seed=0)
    pd.testing.assert_frame_equal(again, index)
    assert stamps("real") == real and stamps("simulated") == sim
    V.build_sources(folders, cache, frame_rate=25.0, seed=1)
    assert stamps("real") == real and stamps("simulated") != sim
    second = TraceSet.load(index[index["source"] == "simulated"]["path"].iloc[0])
    assert not np.array_equal(first.traces, second.traces)
