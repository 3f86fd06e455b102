"""Trace-file format: exact round trips, partial reads, selection, binning, atomic writes."""

import h5py
import numpy as np
import pytest

from cabench import CabenchError, TraceSet
from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceWriter, frame_edges, ragged


def _example(n_trials=3, n_cells=4, n_frames=300, fr=30.0, seed=0):
    rng = np.random.default_rng(seed)
    parts = [np.sort(rng.uniform(0, n_frames / fr, rng.integers(0, 8)))
             for _ in range(n_trials * n_cells)]
    times, offsets = ragged(parts)
    traces = rng.standard_normal((n_trials, n_cells, n_frames)).astype(np.float32)
    return TraceSet(traces, fr, times, offsets, calcium=traces * 0.5, source="simulated",
                    indicator="GCaMP6f", seed=7, params={"rate": 0.5, "nested": {"a": [1, 2]}},
                    cell_names=[f"c{i}" for i in range(n_cells)]), parts


def test_round_trip_is_exact(tmp_path):
    ts, _ = _example()
    ts.save(tmp_path / "a.h5")
    back = TraceSet.load(tmp_path / "a.h5")
    for name in ("traces", "calcium", "spike_times", "spike_offsets"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ts, name))
    assert back.frame_rate == ts.frame_rate and back.seed == 7
    assert back.params == ts.params and back.cell_names == ts.cell_names
    assert back.source == "simulated" and back.indicator == "GCaMP6f"
    assert back.cabench_version and back.command


def test_spike_layout_is_cell_major(tmp_path):
    ts, parts = _example()
    for c in range(4):
        for t in range(3):
            np.testing.assert_array_equal(ts.spikes(t, c), parts[c * 3 + t])
    counts = ts.spike_counts()
    assert counts.shape == (3, 4) and counts[2, 1] == len(parts[1 * 3 + 2])


def test_partial_load_matches_selection(tmp_path):
    ts, _ = _example()
    ts.save(tmp_path / "a.h5")
    part = TraceSet.load(tmp_path / "a.h5", cells=slice(1, 3), trials=slice(0, 2))
    sel = ts.select(trials=[0, 1], cells=[1, 2])
    np.testing.assert_array_equal(part.traces, sel.traces)
    np.testing.assert_array_equal(part.spike_times, sel.spike_times)
    np.testing.assert_array_equal(part.spike_offsets, sel.spike_offsets)


def test_time_selection_keeps_clock_and_spikes_inside():
    ts, _ = _example()
    sel = ts.select(start=2.0, stop=5.0)
    assert sel.n_frames == 90 and sel.times()[0] == pytest.approx(2.0)
    assert np.all((sel.spike_times >= 2.0) & (sel.spike_times < 5.0))
    inside = np.sum((ts.spike_times >= 2) & (ts.spike_times < 5))
    assert sel.spike_times.size == inside


def test_binning_uses_edges_halfway_between_frames():
    times, offsets = ragged([np.array([0.0, 0.016, 0.017, 0.04, 9.975])])
    ts = TraceSet(np.zeros((1, 1, 300), np.float32), 30.0, times, offsets)
    counts = ts.binned_spikes()[0, 0]
    # frame 0 covers [-1/60, 1/60): 0.0 and 0.016; 0.017 and 0.04 fall in frame 1 [1/60, 3/60)
    assert counts[0] == 2 and counts[1] == 2 and counts[-1] == 1 and counts.sum() == 5
    np.testing.assert_allclose(frame_edges(np.array([0.0, 1.0, 3.0])), [-0.5, 0.5, 2.0, 4.0])


def test_binning_total_matches_counts():
    ts, _ = _example()
    b = ts.binned_spikes()
    np.testing.assert_array_equal(b.sum(axis=2), ts.spike_counts())


def test_noise_level_of_white_noise():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((2, 3, 50000))
    nu = noise_level_nu(x, 30.0)
    np.testing.assert_allclose(nu, 95.4 * 0.1 / np.sqrt(30.0), rtol=0.03)
    x[0, 0, :100] = np.nan  # NaN frames are ignored
    assert np.isfinite(noise_level_nu(x, 30.0)).all()


def test_existing_file_is_refused_and_kept(tmp_path):
    ts, _ = _example()
    path = tmp_path / "a.h5"
    ts.save(path)
    before = path.read_bytes()
    with pytest.raises(CabenchError, match="exists"):
        ts.save(path)
    assert path.read_bytes() == before
    ts.save(path, overwrite=True)


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "b.h5"
    with pytest.raises(KeyboardInterrupt):
        with TraceWriter(path, n_trials=1, n_cells=2, n_frames=10, frame_rate=10.0) as w:
            w.write_cells(0, np.zeros((1, 1, 10), np.float32))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="only 1 of 2"):
        with TraceWriter(path, n_trials=1, n_cells=2, n_frames=10, frame_rate=10.0) as w:
            w.write_cells(0, np.zeros((1, 1, 10), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all"])
def test_corrupt_or_empty_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    with pytest.raises(CabenchError, match="bad.h5"):
        TraceSet.load(path)


def test_foreign_hdf5_and_newer_versions_are_refused(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(CabenchError, match="not a cabench trace file"):
        TraceSet.load(tmp_path / "x.h5")
    ts, _ = _example()
    ts.save(tmp_path / "y.h5")
    with h5py.File(tmp_path / "y.h5", "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CabenchError, match="newer"):
        TraceSet.load(tmp_path / "y.h5")


@pytest.mark.parametrize("kwargs, msg", [
    (dict(traces=np.zeros(5), frame_rate=30.0), "trials, cells, frames"),
    (dict(traces=np.zeros((1, 1, 5)), frame_rate=0.0), "positive"),
    (dict(traces=np.zeros((1, 1, 5)), frame_rate=-3.0), "positive"),
    (dict(traces=np.zeros((1, 1, 5)), frame_rate=30.0, source="fake"), "source"),
    (dict(traces=np.zeros((1, 2, 5)), frame_rate=30.0, spike_times=np.zeros(1),
          spike_offsets=np.array([0, 1])), "spike_offsets"),
])
def test_invalid_tracesets_are_refused(kwargs, msg):
    with pytest.raises(CabenchError, match=msg):
        TraceSet(**kwargs)


def test_unwritable_destination(tmp_path):
    ts, _ = _example()
    with pytest.raises(CabenchError, match="does not exist"):
        ts.save(tmp_path / "missing" / "a.h5")
