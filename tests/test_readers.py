"""Tests of cabench.readers on small synthetic files of each format (built in tmp_path)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cabench.errors import CabenchError
from cabench.readers import (
    _cascade_indicator,
    read_cascade_file,
    read_cascade_folder,
    read_matrix,
    read_population_mat,
    read_suite2p,
    read_traces,
)
from cabench.traceset import TraceSet


def raises(match_path: Path | str, *fragments: str):
    """Context manager: a one-line CabenchError naming ``match_path`` and each fragment."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(CabenchError)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            msg = str(self.info.value)
            assert "\n" not in msg, msg
            assert str(match_path) in msg, msg
            for fragment in fragments:
                assert fragment in msg, msg
            return handled

    return _Check()


# --- CASCADE -----------------------------------------------------------------------------------
def write_cattached(path: Path, recordings: list[dict]) -> Path:
    """A CASCADE file as MATLAB writes it: a 1 x n cell array of 1 x 1 structs."""
    cells = np.empty((1, len(recordings)), dtype=object)
    for i, rec in enumerate(recordings):
        cells[0, i] = rec
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"CAttached": cells})
    return path


def recording(t, y, events, t_row=True, y_row=False) -> dict:
    """Fields of one recording, as row or column vectors like the real files."""
    t, y, events = np.asarray(t, float), np.asarray(y), np.asarray(events)
    return {
        "fluo_time": t[None, :] if t_row else t[:, None],
        "fluo_mean": y[None, :] if y_row else y[:, None],
        "events_AP": events[:, None],
    }


T0 = 5.0
RATE = 30.0
TIMES = T0 + np.arange(100) / RATE
Y = np.linspace(-0.1, 0.5, 100)
# spike times in 0.1 ms units: 5.5 s, 6.0 s, 7.25 s inside; 20 s after the last frame (8.3 s)
EVENTS = np.array([55000, 60000, 72500, 200000], dtype=np.int32)


@pytest.fixture
def cascade_file(tmp_path: Path) -> Path:
    rec1_events = np.array([52000.0, np.nan, 61234.0])
    return write_cattached(
        tmp_path / "DS09-GCaMP6f-m-V1" / "cell_7.mat",
        [
            recording(TIMES, Y, EVENTS),
            recording(TIMES[:50], Y[:50].astype(np.float32), rec1_events, t_row=False,
                      y_row=True),
        ],
    )


def test_synthetic_cascade_file_has_the_real_layout(cascade_file: Path) -> None:
    # the layout of the real files: object (1, n) of struct (1, 1) with object fields holding
    # (1, N) / (N, 1) numeric arrays
    cells = scipy.io.loadmat(cascade_file)["CAttached"]
    assert cells.dtype == object and cells.shape == (1, 2)
    rec = cells[0][0]
    assert rec.shape == (1, 1)
    assert rec.dtype.names == ("fluo_time", "fluo_mean", "events_AP")
    assert rec[0][0]["fluo_time"].shape == (1, 100)
    assert rec[0][0]["fluo_mean"].shape == (100, 1)
    assert rec[0][0]["events_AP"].dtype == np.int32


def test_cascade_file_values(cascade_file: Path) -> None:
    sets = read_cascade_file(cascade_file)
    assert len(sets) == 2
    a, b = sets
    assert a.source == "real" and a.indicator == "GCaMP6f"
    assert a.traces.shape == (1, 1, 100) and a.traces.dtype == np.float32
    np.testing.assert_array_equal(a.traces[0, 0], Y.astype(np.float32))
    assert a.frame_rate == pytest.approx(RATE)
    np.testing.assert_allclose(a.frame_times, np.arange(100) / RATE, atol=1e-12)
    # 0.1 ms units -> seconds, shifted by the first frame time; the spike at 20 s is outside
    np.testing.assert_allclose(a.spikes(0, 0), [0.5, 1.0, 2.25], atol=1e-12)
    assert a.params["spikes_outside_dropped"] == 1
    assert a.params["time_offset_s"] == pytest.approx(T0)
    assert a.params["recording"] == 0 and a.params["file"] == str(cascade_file)
    assert a.cell_names == ["cell_7#0"]
    # second recording: column time vector, row float32 fluorescence, NaN spike dropped
    assert b.cell_names == ["cell_7#1"]
    assert b.n_frames == 50
    np.testing.assert_array_equal(b.traces[0, 0], Y[:50].astype(np.float32))
    np.testing.assert_allclose(b.spikes(0, 0), [0.2, 1.1234], atol=1e-12)


def test_cascade_single_recording_file(tmp_path: Path) -> None:
    path = write_cattached(tmp_path / "one.mat", [recording(TIMES, Y, EVENTS[:1])])
    (ts,) = read_cascade_file(path)
    assert ts.indicator == ""  # the folder is not named DSxx-INDICATOR-...
    np.testing.assert_allclose(ts.spikes(0, 0), [0.5])


def test_cascade_empty_spike_list(tmp_path: Path) -> None:
    rec = recording(TIMES, Y, np.zeros(0))
    rec["events_AP"] = np.zeros((0, 0), np.uint8)  # MATLAB's []
    (ts,) = read_cascade_file(write_cattached(tmp_path / "x.mat", [rec]))
    assert ts.spike_times.size == 0 and list(ts.spike_offsets) == [0, 0]


def test_cascade_nan_edges_trimmed_inner_nan_kept_duplicate_dropped(tmp_path: Path) -> None:
    t = TIMES.copy()
    y = Y.copy()
    t[:3] = np.nan  # leading frames without times (as in the real DS07)
    y[:3] = np.nan
    y[-2:] = np.nan  # trailing NaN fluorescence
    y[50] = np.nan  # a NaN frame inside: kept
    t = np.append(t, t[-1])  # the last frame repeated exactly (as in real DS24/DS26/DS27)
    y = np.append(y, y[-1])
    y[-3:] = [0.3, 0.3, 0.3]
    y[-4:-2] = np.nan
    # frames 0-2 NaN, 96-97 NaN, 98 and 99 = 0.3, 100 duplicates 99
    path = write_cattached(tmp_path / "x.mat", [recording(t, y, EVENTS)])
    (ts,) = read_cascade_file(path)
    expected = y[3:100]
    np.testing.assert_array_equal(ts.traces[0, 0], expected.astype(np.float32))
    assert np.isnan(ts.traces[0, 0, 47])
    assert ts.params["trimmed_frames"] == [3, 0]
    assert ts.params["duplicate_frames_dropped"] == 1
    assert ts.params["time_offset_s"] == pytest.approx(TIMES[3])
    assert ts.frame_times[0] == 0.0
    np.testing.assert_allclose(ts.spikes(0, 0), [5.5 - TIMES[3], 6.0 - TIMES[3],
                                                 7.25 - TIMES[3]], atol=1e-12)


def test_cascade_unusable_recordings_skipped_with_warning(tmp_path: Path) -> None:
    empty = {"fluo_time": np.zeros((0, 0)), "fluo_mean": np.zeros((0, 0)),
             "events_AP": np.zeros((0, 0))}
    path = write_cattached(tmp_path / "x.mat", [
        recording(TIMES, np.full(100, np.nan), EVENTS),
        empty,
        recording(TIMES, Y, EVENTS),
    ])
    with pytest.warns(UserWarning) as record:
        sets = read_cascade_file(path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "recording 0: skipped" in messages[0] and str(path) in messages[0]
    assert "recording 1: skipped, no frames" in messages[1]
    assert [ts.cell_names[0] for ts in sets] == ["x#2"]


def test_cascade_length_mismatch_truncated_with_warning(tmp_path: Path) -> None:
    path = write_cattached(tmp_path / "x.mat", [recording(TIMES[:60], Y, EVENTS)])
    with pytest.warns(UserWarning, match="60 frame times for 100 dF/F values"):
        (ts,) = read_cascade_file(path)
    assert ts.n_frames == 60
    np.testing.assert_array_equal(ts.traces[0, 0], Y[:60].astype(np.float32))
    np.testing.assert_allclose(ts.spikes(0, 0), [0.5, 1.0])  # 7.25 s is now after the end


def test_cascade_decreasing_times_skipped(tmp_path: Path) -> None:
    t = TIMES.copy()
    t[40] = t[10]
    path = write_cattached(tmp_path / "x.mat", [recording(t, Y, EVENTS)])
    with pytest.warns(UserWarning, match="frame times do not increase"):
        assert read_cascade_file(path) == []


def test_cascade_folder_sorted_and_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "DS18-R-CaMP-m-CA3"
    write_cattached(folder / "b.mat", [recording(TIMES, Y, EVENTS)])
    write_cattached(folder / "a.mat", [recording(TIMES, Y * 2, EVENTS),
                                       recording(TIMES, Y * 3, EVENTS)])
    sets = read_cascade_folder(folder)
    assert [ts.cell_names[0] for ts in sets] == ["a#0", "a#1", "b#0"]
    assert {ts.indicator for ts in sets} == {"R-CaMP"}
    assert read_traces(folder)[2].cell_names == ["b#0"]
    out = sets[1].save(tmp_path / "rec.h5")
    back = TraceSet.load(out)
    np.testing.assert_array_equal(back.traces, sets[1].traces)
    np.testing.assert_array_equal(back.frame_times, sets[1].frame_times)
    np.testing.assert_array_equal(back.spike_times, sets[1].spike_times)
    np.testing.assert_array_equal(back.spike_offsets, sets[1].spike_offsets)
    assert back.frame_rate == sets[1].frame_rate
    assert back.params == sets[1].params
    assert (back.source, back.indicator, back.cell_names) == ("real", "R-CaMP", ["a#1"])


@pytest.mark.parametrize("name, indicator", [
    ("DS09-GCaMP6f-m-V1", "GCaMP6f"),
    ("DS10-GCaMP6f-m-V1-neuropil-corrected", "GCaMP6f"),
    ("DS02-OGB1-2-m-V1", "OGB1"),
    ("DS03-Cal520-m-S1", "Cal520"),
    ("DS18-R-CaMP-m-CA3", "R-CaMP"),
    ("DS20-jRCaMP1a-m-V1", "jRCaMP1a"),
    ("DS28-XCaMPgf-m-V1", "XCaMPgf"),
    ("DS33-Interneurons2023-m-V1", ""),
    ("my_recordings", ""),
])
def test_cascade_indicator_from_folder_name(name: str, indicator: str) -> None:
    assert _cascade_indicator(name) == indicator


def test_cascade_bad_files(tmp_path: Path) -> None:
    no_var = tmp_path / "other.mat"
    scipy.io.savemat(no_var, {"something": np.ones(3)})
    with raises(no_var, "no CAttached"):
        read_cascade_file(no_var)
    rec = recording(TIMES, Y, EVENTS)
    del rec["events_AP"]
    missing_field = write_cattached(tmp_path / "f.mat", [rec])
    with raises(missing_field, "events_AP"):
        read_cascade_file(missing_field)
    with raises(tmp_path / "nope", "no such folder"):
        read_cascade_folder(tmp_path / "nope")
    (tmp_path / "empty_dir").mkdir()
    with raises(tmp_path / "empty_dir", "no .mat files"):
        read_cascade_folder(tmp_path / "empty_dir")


# --- population .mat --------------------------------------------------------------------------
POP = np.random.default_rng(1).normal(0, 0.1, (3, 40))


def write_population(path: Path, traces=POP, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"dF_traces": traces, **extra})
    return path


def test_population_frame_rate_from_variable(tmp_path: Path) -> None:
    path = write_population(tmp_path / "pop.mat", fs=12.5)
    ts = read_population_mat(path)
    assert ts.traces.shape == (1, 3, 40)  # neurons x frames, not transposed
    np.testing.assert_array_equal(ts.traces[0], POP.astype(np.float32))
    assert ts.frame_rate == 12.5 and ts.source == "real"
    assert ts.params["frame_rate_from"] == "variable fs"
    assert read_population_mat(path, frame_rate=3.0).frame_rate == 3.0


@pytest.mark.parametrize("rel, rate", [
    ("Multiplane-OGB1-zf-7.5Hz/Calcium_traces_01.mat", 7.5),
    ("data/rec_30Hz.mat", 30.0),
    ("Allen-30hz/x.mat", 30.0),
])
def test_population_frame_rate_from_name(tmp_path: Path, rel: str, rate: float) -> None:
    ts = read_traces(write_population(tmp_path / rel))[0]
    assert ts.frame_rate == rate


def test_population_errors_and_warnings(tmp_path: Path) -> None:
    path = write_population(tmp_path / "pop.mat")
    with raises(path, "--frame-rate"):
        read_population_mat(path)
    with raises(path, "positive"):
        read_population_mat(path, frame_rate=0)
    neg = write_population(tmp_path / "neg.mat", fs=-1.0)
    with raises(neg, "positive"):
        read_traces(neg)
    nan_row = POP.copy()
    nan_row[1] = np.nan
    path = write_population(tmp_path / "nanrow.mat", nan_row)
    with pytest.warns(UserWarning, match="1 of 3 neurons are all NaN"):
        ts = read_population_mat(path, frame_rate=10)
    assert np.isnan(ts.traces[0, 1]).all() and np.isfinite(ts.traces[0, [0, 2]]).all()
    all_nan = write_population(tmp_path / "allnan.mat", np.full((2, 5), np.nan))
    with raises(all_nan, "no finite values"):
        read_population_mat(all_nan, frame_rate=10)
    column = write_population(tmp_path / "column.mat", np.ones((5, 1)))
    with raises(column, "shape (5, 1)"):
        read_population_mat(column, frame_rate=10)
    with pytest.warns(UserWarning, match="look like percent"):
        read_population_mat(write_population(tmp_path / "pc.mat", POP * 1000), frame_rate=10)


# --- suite2p -----------------------------------------------------------------------------------
FS = 10.0
N_FRAMES = 3000


def true_dff(n_rois: int) -> np.ndarray:
    """dF/F with short triangular transients every 300 frames, zero in between."""
    dff = np.zeros((n_rois, N_FRAMES))
    pulse = np.concatenate([np.linspace(0, 1, 6), np.linspace(1, 0, 16)[1:]])
    for r in range(n_rois):
        for start in range(50 + 17 * r, N_FRAMES - 40, 300):
            dff[r, start : start + pulse.size] = (r + 1) * 0.5 * pulse
    return dff


def write_suite2p(plane: Path, f: np.ndarray, fneu: np.ndarray, iscell=None, fs=FS) -> Path:
    plane.mkdir(parents=True, exist_ok=True)
    np.save(plane / "F.npy", f.astype(np.float32))
    np.save(plane / "Fneu.npy", fneu.astype(np.float32))
    np.save(plane / "spks.npy", np.zeros_like(f, dtype=np.float32))
    if iscell is None:
        iscell = np.ones(f.shape[0])
    np.save(plane / "iscell.npy", np.column_stack([iscell, np.full(f.shape[0], 0.9)]))
    np.save(plane / "ops.npy", {"fs": fs, "nplanes": 1}, allow_pickle=True)
    return plane


def suite2p_data(n_rois: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw F and Fneu whose corrected trace F - 0.7 Fneu has baseline 100 and known dF/F."""
    dff = true_dff(n_rois)
    frames = np.arange(N_FRAMES)
    fneu = 40.0 + 10.0 * np.sin(2 * np.pi * frames / 700.0) + 5.0 * np.arange(n_rois)[:, None]
    f = 100.0 * (1.0 + dff) + 0.7 * fneu
    return f, fneu, dff


def test_suite2p_dff_neuropil_and_iscell(tmp_path: Path) -> None:
    f, fneu, dff = suite2p_data()
    write_suite2p(tmp_path / "suite2p" / "plane0", f, fneu, iscell=[1, 0, 1, 1])
    ts = read_suite2p(tmp_path)
    assert ts.frame_rate == FS and ts.source == "real"
    assert ts.cell_names == ["0", "2", "3"]
    np.testing.assert_allclose(ts.traces[0], dff[[0, 2, 3]], atol=2e-5)
    assert ts.traces.max() == pytest.approx(2.0, abs=1e-5)
    assert ts.params["neuropil_coefficient"] == 0.7
    assert ts.params["folder"] == str(tmp_path / "suite2p" / "plane0")
    assert ts.params["n_rois"] == 4
    every = read_traces(tmp_path / "suite2p" / "plane0", only_cells=False)[0]
    assert every.cell_names == ["0", "1", "2", "3"]
    np.testing.assert_allclose(every.traces[0], dff, atol=2e-5)


def test_suite2p_neuropil_coefficient(tmp_path: Path) -> None:
    dff = true_dff(1)
    fneu = np.full((1, N_FRAMES), 40.0)
    plane = write_suite2p(tmp_path / "plane0", 100.0 * (1.0 + dff) + 0.5 * fneu, fneu)
    # the coefficient the data were made with recovers dF/F exactly
    ts = read_suite2p(plane, neuropil_coefficient=0.5)
    np.testing.assert_allclose(ts.traces[0], dff, atol=2e-5)
    # without subtraction the baseline is 100 + 20 and the transients shrink by 100 / 120
    raw = read_suite2p(plane, neuropil_coefficient=0.0)
    np.testing.assert_allclose(raw.traces[0], dff * 100.0 / 120.0, atol=2e-5)
    assert raw.params["neuropil_coefficient"] == 0.0


def test_suite2p_errors(tmp_path: Path) -> None:
    f, fneu, _ = suite2p_data(2)
    bad = write_suite2p(tmp_path / "neg", f, fneu * 5.0)  # F - 0.7 Fneu < 0
    with raises(bad, "F0 <= 0", "ROIs 0, 1"):
        read_suite2p(bad)
    shapes = write_suite2p(tmp_path / "shapes", f, fneu[:, :-1])
    with raises(shapes, "Fneu.npy has shape (2, 2999)"):
        read_suite2p(shapes)
    none = write_suite2p(tmp_path / "none", f, fneu, iscell=[0, 0])
    with raises(none, "no ROI"):
        read_suite2p(none)
    rate = write_suite2p(tmp_path / "rate", f, fneu, fs=0.0)
    with raises(rate, "positive"):
        read_suite2p(rate)
    assert read_suite2p(rate, frame_rate=5.0).frame_rate == 5.0
    (tmp_path / "empty").mkdir()
    with raises(tmp_path / "empty", "not a suite2p folder"):
        read_suite2p(tmp_path / "empty")
    corrupt = write_suite2p(tmp_path / "corrupt", f, fneu)
    (corrupt / "F.npy").write_bytes(np.random.default_rng(0).bytes(500))
    with raises(corrupt / "F.npy", "not a readable .npy"):
        read_suite2p(corrupt)
    with raises(tmp_path / "neg", "baseline window"):
        read_suite2p(bad, baseline_window_s=0)


# --- matrices ----------------------------------------------------------------------------------
MAT = np.arange(12, dtype=np.float64).reshape(3, 4) / 20.0  # 3 cells x 4 frames


def test_matrix_npy_layouts(tmp_path: Path) -> None:
    np.save(tmp_path / "cf.npy", MAT)
    ts = read_matrix(tmp_path / "cf.npy", frame_rate=20)
    assert ts.traces.shape == (1, 3, 4) and ts.frame_rate == 20.0
    np.testing.assert_array_equal(ts.traces[0], MAT.astype(np.float32))
    np.save(tmp_path / "fc.npy", MAT.T)
    ts = read_matrix(tmp_path / "fc.npy", frame_rate=20, layout="frames_cells")
    np.testing.assert_array_equal(ts.traces[0], MAT.astype(np.float32))
    cube = np.stack([MAT, -MAT])
    np.save(tmp_path / "cube.npy", cube)
    ts = read_traces(tmp_path / "cube.npy", frame_rate=20)[0]
    assert ts.traces.shape == (2, 3, 4)
    np.testing.assert_array_equal(ts.traces, cube.astype(np.float32))
    assert ts.params == {"reader": "matrix", "file": str(tmp_path / "cube.npy"),
                         "layout": "cells_frames", "units": "fraction"}


def test_matrix_csv_with_and_without_header(tmp_path: Path) -> None:
    (tmp_path / "plain.csv").write_text("0.1,0.2,nan\n0.3,0.4,0.5\n")
    ts = read_matrix(tmp_path / "plain.csv", frame_rate=10)
    np.testing.assert_array_equal(ts.traces[0], np.float32([[0.1, 0.2, np.nan],
                                                            [0.3, 0.4, 0.5]]))
    (tmp_path / "head.csv").write_text("cell_a,cell_b\n0.1,0.2\n0.3,0.4\n0.5,0.6\n")
    ts = read_traces(tmp_path / "head.csv", frame_rate=10, layout="frames_cells")[0]
    np.testing.assert_array_equal(ts.traces[0], np.float32([[0.1, 0.3, 0.5],
                                                            [0.2, 0.4, 0.6]]))


def test_matrix_percent(tmp_path: Path) -> None:
    np.save(tmp_path / "pc.npy", MAT * 100 * 60)  # up to 3,300 %
    with raises(tmp_path / "pc.npy", "look like percent", "units percent"):
        read_matrix(tmp_path / "pc.npy", frame_rate=10)
    ts = read_matrix(tmp_path / "pc.npy", frame_rate=10, units="percent")
    np.testing.assert_allclose(ts.traces[0], MAT * 60, rtol=1e-6)


def test_matrix_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "ok.npy", MAT)
    for rate in (None, 0, -5.0, float("nan")):
        with raises(tmp_path / "ok.npy", "frame"):
            read_matrix(tmp_path / "ok.npy", frame_rate=rate)
    with raises(tmp_path / "ok.npy", "--frame-rate"):
        read_traces(tmp_path / "ok.npy")
    for name, array in (("one_d", np.ones(5)), ("four_d", np.ones((2, 2, 2, 2)))):
        np.save(tmp_path / f"{name}.npy", array)
        with raises(tmp_path / f"{name}.npy", f"shape {array.shape}"):
            read_matrix(tmp_path / f"{name}.npy", frame_rate=10)
    np.save(tmp_path / "nan.npy", np.full((2, 3), np.nan))
    with raises(tmp_path / "nan.npy", "no finite values"):
        read_matrix(tmp_path / "nan.npy", frame_rate=10)
    (tmp_path / "junk.npy").write_bytes(np.random.default_rng(0).bytes(300))
    with raises(tmp_path / "junk.npy", "not a readable .npy"):
        read_matrix(tmp_path / "junk.npy", frame_rate=10)
    (tmp_path / "text.csv").write_text("1,2\n3,abc\n")
    with raises(tmp_path / "text.csv", "not a numeric CSV"):
        read_matrix(tmp_path / "text.csv", frame_rate=10)
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with raises(tmp_path / "ragged.csv", "different numbers"):
        read_matrix(tmp_path / "ragged.csv", frame_rate=10)
    (tmp_path / "head_only.csv").write_text("a,b\n")
    with raises(tmp_path / "head_only.csv", "no numbers"):
        read_matrix(tmp_path / "head_only.csv", frame_rate=10)
    with raises("layout", "frames_cells"):
        read_matrix(tmp_path / "ok.npy", frame_rate=10, layout="time_first")
    with raises("units", "percent"):
        read_matrix(tmp_path / "ok.npy", frame_rate=10, units="permille")


# --- dispatcher and bad files ------------------------------------------------------------------
def test_read_traces_dispatch(tmp_path: Path, cascade_file: Path) -> None:
    assert len(read_traces(cascade_file)) == 2
    assert len(read_traces(cascade_file.parent)) == 2
    pop = read_traces(write_population(tmp_path / "p.mat", fs=4.0))
    assert len(pop) == 1 and pop[0].n_cells == 3
    f, fneu, _ = suite2p_data(2)
    write_suite2p(tmp_path / "s2p" / "suite2p" / "plane0", f, fneu)
    (s2p,) = read_traces(tmp_path / "s2p", neuropil_coefficient=0.7, baseline_window_s=30)
    assert s2p.params["baseline_window_s"] == 30.0
    h5 = pop[0].save(tmp_path / "pop.h5")
    (back,) = read_traces(h5)
    np.testing.assert_array_equal(back.traces, pop[0].traces)
    assert back.frame_rate == 4.0


def test_read_traces_errors(tmp_path: Path, cascade_file: Path) -> None:
    with raises(tmp_path / "missing.mat", "no such file"):
        read_traces(tmp_path / "missing.mat")
    (tmp_path / "notes.txt").write_text("hello")
    with raises(tmp_path / "notes.txt", "unknown format", "suite2p"):
        read_traces(tmp_path / "notes.txt")
    (tmp_path / "nothing").mkdir()
    with raises(tmp_path / "nothing", "unknown folder", "CASCADE"):
        read_traces(tmp_path / "nothing")
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"traces": np.ones((2, 2))})
    with raises(other, "without CAttached or dF_traces", "traces"):
        read_traces(other)
    with raises(cascade_file, "layout", "do not apply"):
        read_traces(cascade_file, layout="frames_cells")
    junk = np.random.default_rng(2).bytes(1000)
    for name in ("junk.mat", "junk.h5", "junk.npy"):
        (tmp_path / name).write_bytes(junk)
        with raises(tmp_path / name, "not a readable"):
            read_traces(tmp_path / name, frame_rate=10)
    for name in ("empty.mat", "empty.npy", "empty.csv"):
        (tmp_path / name).write_bytes(b"")
        with raises(tmp_path / name, "empty"):
            read_traces(tmp_path / name, frame_rate=10)
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(cascade_file.read_bytes()[:300])
    with raises(truncated, "not a readable MATLAB file"):
        read_traces(truncated)
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" "))
    with raises(v73, "v7.3"):
        read_traces(v73)


def test_no_warnings_for_clean_files(tmp_path: Path, cascade_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_traces(cascade_file)
        read_traces(write_population(tmp_path / "p.mat", fs=4.0))
