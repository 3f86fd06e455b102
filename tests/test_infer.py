"""`cabench infer` and benchmark/infer.py: any method on any trace file, to an estimates file."""

import dataclasses

import h5py
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from cabench.benchmark.infer import infer_file, read_estimates
from cabench.benchmark.methods import get_method, method_class
from cabench.errors import CabenchError
from cabench.simulators import simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A small simulated recording (2 trials x 8 cells x 60 s at 30 Hz) and its trace file."""
    ts = simulate(preset="GCaMP6f", cells=8, duration=60, noise=1, seed=1, trials=2)
    path = tmp_path_factory.mktemp("sim") / "sim.h5"
    ts.save(path)
    return ts, path


def _smooth(x, frame_rate):
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return gaussian_filter1d(rows, 0.05 * frame_rate, axis=-1)


def test_round_trip_matches_the_method_and_the_truth(sim, tmp_path):
    ts, path = sim
    out = infer_file(path, "oasis-ar1", {}, tmp_path / "est.h5")
    direct = get_method("oasis-ar1").infer(ts)
    [rec] = read_estimates(out)
    assert rec.estimate.dtype == np.float32 and rec.estimate.shape == ts.traces.shape
    np.testing.assert_array_equal(rec.estimate, direct.estimate)
    times, offsets = direct.ragged()
    np.testing.assert_array_equal(rec.spike_times, times)
    np.testing.assert_array_equal(rec.spike_offsets, offsets)
    np.testing.assert_array_equal(rec.spikes(1, 3), direct.spike_times[1 * ts.n_cells + 3])
    assert rec.frame_rate == 30.0 and rec.method == "oasis-ar1"
    assert rec.params == direct.params and rec.cell_names is None and rec.frame_times is None
    with h5py.File(out) as f:
        assert f.attrs["format"] == "cabench-estimates" and f.attrs["format_version"] == 1
        assert f.attrs["unit"] == "expected spikes per frame"
        assert f.attrs["input"] == str(path) and f.attrs["method_version"] == direct.version
        # estimates only: the input's ground truth is not copied
        assert set(f["recordings/0000"]) == {"estimate", "spike_times", "spike_offsets"}
    # against independent truth: oasis reaches a median of 0.72 here; another cell's spikes ~0
    e = _smooth(rec.estimate, ts.frame_rate)
    s = _smooth(ts.binned_spikes(), ts.frame_rate)
    shuffled = _smooth(np.roll(ts.binned_spikes(), 1, axis=1), ts.frame_rate)
    corr = np.median([np.corrcoef(a, b)[0, 1] for a, b in zip(e, s, strict=True)])
    control = np.median([np.corrcoef(a, b)[0, 1] for a, b in zip(e, shuffled, strict=True)])
    assert corr > 0.6 and control < 0.2


def test_text_parameter_is_parsed_and_used(sim, tmp_path):
    ts, path = sim
    default = read_estimates(infer_file(path, "derivative", {}, tmp_path / "a.h5"))[0]
    half = read_estimates(infer_file(path, "derivative", {"amplitude": " 0.2"},
                                     tmp_path / "b.h5"))[0]
    assert default.params["amplitude"] == 0.1 and half.params["amplitude"] == 0.2
    np.testing.assert_allclose(half.estimate, default.estimate / 2, rtol=1e-6, atol=1e-9)
    assert not np.array_equal(half.estimate, default.estimate)
    with pytest.raises(CabenchError, match="expected float"):
        infer_file(path, "derivative", {"amplitude": "big"}, tmp_path / "c.h5")
    with pytest.raises(CabenchError, match="unknown parameter.*foo.*valid: sigma_s, amplitude"):
        infer_file(path, "derivative", {"foo": "1"}, tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()


def test_indicator_comes_from_the_recording_unless_given(tmp_path):
    ts = simulate(preset="GCaMP6s", cells=2, duration=10, noise=1, seed=2)
    path = ts.save(tmp_path / "s.h5")
    auto = read_estimates(infer_file(path, "peeling", {}, tmp_path / "a.h5"))[0]
    given = read_estimates(infer_file(path, "peeling", {"indicator": "GCaMP6f"},
                                      tmp_path / "b.h5"))[0]
    assert auto.params["indicator"] == "GCaMP6s" and given.params["indicator"] == "GCaMP6f"


def test_npy_needs_a_frame_rate_and_keeps_nan_frames(sim, tmp_path):
    ts, _ = sim
    x = ts.traces[0].copy()
    x[2, 100:110] = np.nan
    np.save(tmp_path / "m.npy", x)
    with pytest.raises(CabenchError, match="frame-rate"):
        infer_file(tmp_path / "m.npy", "oasis-ar1", {}, tmp_path / "e.h5")
    assert not (tmp_path / "e.h5").exists()
    [rec] = read_estimates(infer_file(tmp_path / "m.npy", "oasis-ar1", {}, tmp_path / "e.h5",
                                      frame_rate=30))
    assert rec.estimate.shape == (1, 8, x.shape[1]) and rec.frame_rate == 30
    assert np.isnan(rec.estimate[0, 2, 100:110]).all()
    assert np.isfinite(np.delete(rec.estimate[0, 2], np.s_[100:110])).all()
    assert np.isfinite(rec.estimate[0, [0, 1, 3]]).all()
    assert any("interpolated" in w for w in rec.warnings)


def test_spike_times_follow_the_recordings_clock(sim, tmp_path):
    ts, _ = sim
    one = ts.select(trials=[0], cells=[0, 1])
    clock = 10 + np.arange(one.n_frames) / 30 * 1.01  # a late start, a slow clock
    path = dataclasses.replace(one, frame_times=clock, cell_names=["a", "b"]).save(
        tmp_path / "clock.h5")
    [rec] = read_estimates(infer_file(path, "oasis-ar1", {}, tmp_path / "e.h5"))
    nominal = get_method("oasis-ar1").infer(one).spike_times[1]
    np.testing.assert_allclose(rec.spikes(0, 1), 10 + nominal * 1.01)
    np.testing.assert_array_equal(rec.frame_times, clock)
    assert rec.cell_names == ["a", "b"]


def test_cli_writes_and_reports(run, sim, tmp_path):
    _, path = sim
    out = tmp_path / "e.h5"
    res = run("infer", path, "-m", "oasis-ar1", "-p", "align=false", "-o", out)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"wrote {out}: 1 recording, 8 cells, method oasis-ar1, ")
    assert res.stdout.count("\n") == 1
    [rec] = read_estimates(out)
    assert rec.params["align"] is False
    with h5py.File(out) as f:
        assert f.attrs["command"].startswith("cabench infer ")
    assert run("infer", path, "-m", "oasis-ar1", "-o", out, "-q", "--overwrite").output == ""


def test_cli_reads_percent_matrices_in_either_layout(run, sim, tmp_path):
    ts, _ = sim
    x = ts.traces[0]
    np.save(tmp_path / "pc.npy", (x * 100 * 30).T)  # frames x cells, percent, up to ~1,000 %
    args = ["infer", tmp_path / "pc.npy", "-m", "oasis-ar1", "--frame-rate", 30, "-q"]
    res = run(*args, "-o", tmp_path / "a.h5")
    assert res.exit_code == 2 and "look like percent" in res.output
    assert "--units percent" in res.output
    res = run(*args, "--units", "percent", "--layout", "frames_cells", "-o", tmp_path / "a.h5")
    assert res.exit_code == 0, res.output
    direct = get_method("oasis-ar1").infer(x * 30, 30).estimate
    np.testing.assert_allclose(read_estimates(tmp_path / "a.h5")[0].estimate[0], direct,
                               rtol=1e-4, atol=1e-5)
    res = run("info", tmp_path / "pc.npy", "--frame-rate", 30, "--units", "percent",
              "--layout", "frames_cells", "--summary")
    assert res.exit_code == 0 and "1 trials x 8 cells x 1800 frames" in res.output


def test_cli_caps_method_warnings(run, tmp_path):
    x = np.ones((8, 300), np.float32)  # constant rows: one warning each
    np.save(tmp_path / "c.npy", x)
    res = run("infer", tmp_path / "c.npy", "--frame-rate", 30, "-m", "derivative",
              "-o", tmp_path / "e.h5")
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 6 and all(ln.startswith("Warning: ") for ln in lines)
    assert "constant trace" in lines[0] and lines[-1] == "Warning: ... and 3 more"


@pytest.mark.parametrize("args, message", [
    (["-m", "nope"], "unknown method 'nope'; available: oasis-ar1,"),
    (["-m", "derivative", "-p", "foo=1"], "unknown parameter(s) foo; valid: sigma_s"),
    (["-m", "derivative", "-p", "sigma_s"], "--param 'sigma_s': expected KEY=VALUE"),
    (["-m", "derivative", "-p", "sigma_s=-1"], "sigma_s must be >= 0"),
])
def test_cli_errors_are_one_line(run, sim, tmp_path, args, message):
    _, path = sim
    res = run("infer", path, *args, "-o", tmp_path / "e.h5")
    assert res.exit_code == 2
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1
    assert message in res.output
    assert not (tmp_path / "e.h5").exists()


def test_cli_keeps_an_existing_output(run, sim, tmp_path):
    _, path = sim
    out = tmp_path / "e.h5"
    out.write_bytes(b"keep me")
    res = run("infer", path, "-m", "derivative", "-o", out)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert out.read_bytes() == b"keep me"


def test_failure_during_inference_leaves_no_file(run, sim, tmp_path, monkeypatch):
    _, path = sim

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(method_class("derivative"), "infer", boom)
    res = run("infer", path, "-m", "derivative", "-o", tmp_path / "e.h5")
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError)
    assert list(tmp_path.iterdir()) == []


def test_read_estimates_refuses_other_files(sim, tmp_path):
    _, path = sim
    with pytest.raises(CabenchError, match="not a cabench estimates file"):
        read_estimates(path)  # a trace file
    (tmp_path / "bad.h5").write_bytes(b"garbage")
    with pytest.raises(CabenchError, match="not a readable HDF5 estimates file"):
        read_estimates(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.attrs["format"] = "cabench-estimates"
    with pytest.raises(CabenchError, match="holds no recordings"):
        read_estimates(tmp_path / "empty.h5")
    with pytest.raises(CabenchError, match="no such file"):
        read_estimates(tmp_path / "missing.h5")
