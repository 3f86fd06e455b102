"""Readers for real recordings: CASCADE ground truth, population .mat files, suite2p, matrices.

Every reader returns :class:`~cabench.traceset.TraceSet` objects with ``source="real"``: traces
``(trials, cells, frames)`` as dF/F *fractions* (0.1 = 10 %), frame rates in Hz, times in
seconds. :func:`read_traces` picks the reader from the path.

========================================  ==========================================================
format                                    reader
========================================  ==========================================================
cabench trace file (``.h5``, ``.hdf5``)   :meth:`TraceSet.load <cabench.traceset.TraceSet.load>`
CASCADE ground truth (``.mat`` with       :func:`read_cascade_file`, :func:`read_cascade_folder`
``CAttached``), or a folder of them       (one TraceSet per recording, with spike times)
population ``.mat`` with ``dF_traces``    :func:`read_population_mat`
suite2p output folder                     :func:`read_suite2p` (dF/F computed from F and Fneu)
``.npy`` / ``.csv`` matrix                :func:`read_matrix` (needs the frame rate)
========================================  ==========================================================

Problems with the input raise :class:`~cabench.errors.CabenchError` with a one-line message that
names the file. Frames that are NaN inside a recording stay NaN: nothing is filled in.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cabench.errors import CabenchError
from cabench.traceset import TraceSet, frame_edges, ragged

__all__ = [
    "read_cascade_file",
    "read_cascade_folder",
    "read_matrix",
    "read_population_mat",
    "read_suite2p",
    "read_traces",
]

SUPPORTED_FORMATS = (
    "cabench trace file (.h5/.hdf5), CASCADE ground-truth .mat (CAttached) or a folder of them, "
    ".mat with dF_traces, suite2p output folder, .npy/.csv matrix"
)
CASCADE_TIME_UNIT_S = 1e-4
"""``events_AP`` in CASCADE files counts units of 0.1 ms."""
PERCENT_THRESHOLD = 20.0
"""A 99th percentile of ``|dF/F|`` above this (2,000 % as a fraction) means the data are percent."""

_FRAME_RATE_VARIABLES = {"framerate", "fs", "fps", "samplingrate", "samplerate"}
_HZ_IN_NAME = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*Hz(?![A-Za-z])", re.IGNORECASE)
# "DS09-GCaMP6f-m-V1" -> GCaMP6f, "DS18-R-CaMP-m-CA3" -> R-CaMP, "DS03-Cal520-m-S1" -> Cal520;
# "DS33-Interneurons2023-m-V1" names no indicator.
_CASCADE_INDICATOR = re.compile(
    r"DS\d+-((?:[A-Za-z]-)?[A-Za-z]*(?:CaMP|OGB|Cal|GECO)[A-Za-z0-9]*)(?:-|$)"
)


# --- CASCADE ground truth ------------------------------------------------------------------
def read_cascade_file(path: str | Path) -> list[TraceSet]:
    """Recordings of one CASCADE ground-truth neuron (a ``.mat`` file with ``CAttached``).

    ``CAttached`` is a 1 x n cell array of structs with ``fluo_time`` (frame times, s),
    ``fluo_mean`` (dF/F, fraction) and ``events_AP`` (spike times in units of 0.1 ms, on the
    same clock as ``fluo_time``). Each recording becomes one TraceSet of 1 trial and 1 cell:

    - ``frame_times`` are the recorded ones shifted so that the first frame is at 0 s, spike
      times are shifted by the same offset (``params["time_offset_s"]``); ``frame_rate`` is
      ``1 / median(diff(fluo_time))`` (Hz).
    - NaN spike times are dropped, and so are spikes outside the imaged period (before the
      first frame's bin or after the last frame's, bins as in
      :func:`~cabench.traceset.frame_edges`); ``params["spikes_outside_dropped"]`` counts them.
    - Leading and trailing frames whose time or dF/F is NaN are trimmed
      (``params["trimmed_frames"]``); NaN dF/F inside the recording is kept as NaN.
    - A frame that exactly repeats the previous one (same time, same value; some files end
      with one) is dropped (``params["duplicate_frames_dropped"]``).
    - If ``fluo_time`` and ``fluo_mean`` differ in length, both are cut to the shorter, with
      a warning.

    A recording with no usable frames (none, all NaN, fewer than two, a NaN time inside, or
    times that do not increase) is skipped with a warning. ``cell_names`` is
    ``["<file stem>#<recording index>"]``; the indicator comes from a dataset folder named like
    ``DS09-GCaMP6f-m-V1`` (``""`` otherwise).
    """
    path = _existing_file(path)
    records = _cattached_records(path)
    indicator = _cascade_indicator(path.parent.name)
    out = []
    for i, rec in enumerate(records):
        fields = {}
        for name in ("fluo_time", "fluo_mean", "events_AP"):
            if name not in (rec.dtype.names or ()):
                raise CabenchError(f"{path}: recording {i} of CAttached has no field {name!r}")
            fields[name] = _float_vector(rec[name], path, f"{name} of recording {i}")
        ts = _cascade_recording(path, i, indicator, **fields)
        if ts is not None:
            out.append(ts)
    return out


def read_cascade_folder(path: str | Path) -> list[TraceSet]:
    """All recordings of a CASCADE dataset folder: its ``.mat`` files sorted by name.

    See :func:`read_cascade_file`; every ``.mat`` file of the folder must hold ``CAttached``.
    """
    path = Path(path)
    if not path.is_dir():
        raise CabenchError(f"{path}: no such folder")
    files = sorted(p for p in path.glob("*.mat") if p.is_file())
    if not files:
        raise CabenchError(f"{path}: no .mat files in this folder")
    return [ts for f in files for ts in read_cascade_file(f)]


def _cattached_records(path: Path) -> list[np.void]:
    """The struct of each recording in ``CAttached`` (cell array or plain struct array)."""
    data = _load_mat(path)
    if "CAttached" not in data:
        raise CabenchError(f"{path}: no CAttached variable ({_variables(data)}); not a CASCADE "
                           "ground-truth file")
    cells = data["CAttached"]
    if cells.dtype.names is not None:  # a struct array rather than a cell array of structs
        return list(cells.ravel())
    if cells.dtype != object:
        raise CabenchError(f"{path}: CAttached is not a cell array of structs")
    records = []
    for i, cell in enumerate(cells.ravel()):
        cell = np.asarray(cell)
        if cell.dtype.names is None or cell.size != 1:
            raise CabenchError(f"{path}: element {i} of CAttached is not a single struct")
        records.append(cell.ravel()[0])
    return records


def _cascade_recording(
    path: Path, index: int, indicator: str, fluo_time: np.ndarray, fluo_mean: np.ndarray,
    events_AP: np.ndarray,
) -> TraceSet | None:
    """One recording as a TraceSet, or None (with a warning) if it has no usable frames."""
    where = f"{path} recording {index}"
    t, y = fluo_time, fluo_mean
    if t.size != y.size:
        warnings.warn(f"{where}: {t.size} frame times for {y.size} dF/F values; keeping the "
                      f"first {min(t.size, y.size)} frames", stacklevel=3)
        n = min(t.size, y.size)
        t, y = t[:n], y[:n]
    good = np.flatnonzero(np.isfinite(t) & np.isfinite(y))
    if good.size == 0:
        reason = "no frames" if t.size == 0 else "no frame with a finite time and dF/F"
        return _skip(where, reason)
    trimmed = [int(good[0]), int(t.size - 1 - good[-1])]
    t, y = t[good[0] : good[-1] + 1], y[good[0] : good[-1] + 1]
    if np.isnan(t).any():
        return _skip(where, f"{int(np.isnan(t).sum())} frame times inside it are NaN")
    same_y = (y[1:] == y[:-1]) | (np.isnan(y[1:]) & np.isnan(y[:-1]))
    repeat = np.flatnonzero((np.diff(t) == 0) & same_y)
    if repeat.size:
        keep = np.ones(t.size, bool)
        keep[repeat + 1] = False
        t, y = t[keep], y[keep]
    if t.size < 2:
        return _skip(where, "fewer than two frames")
    if np.any(np.diff(t) <= 0):
        return _skip(where, "frame times do not increase")
    spikes = events_AP[np.isfinite(events_AP)] * CASCADE_TIME_UNIT_S
    spikes.sort()
    lo, hi = frame_edges(t)[[0, -1]]
    inside = (spikes >= lo) & (spikes < hi)
    offset = float(t[0])
    spike_times, spike_offsets = ragged([spikes[inside] - offset])
    return TraceSet(
        traces=y.reshape(1, 1, -1),
        frame_rate=1.0 / float(np.median(np.diff(t))),
        spike_times=spike_times,
        spike_offsets=spike_offsets,
        frame_times=t - offset,
        cell_names=[f"{path.stem}#{index}"],
        source="real",
        indicator=indicator,
        params={
            "reader": "cascade",
            "file": str(path),
            "dataset": path.parent.name,
            "recording": index,
            "time_offset_s": offset,
            "trimmed_frames": trimmed,
            "duplicate_frames_dropped": int(repeat.size),
            "spikes_outside_dropped": int((~inside).sum()),
        },
    )


def _skip(where: str, reason: str) -> None:
    warnings.warn(f"{where}: skipped, {reason}", stacklevel=4)
    return None


def _cascade_indicator(folder_name: str) -> str:
    """The indicator named by a CASCADE dataset folder (``DS09-GCaMP6f-m-V1``), else ``""``."""
    m = _CASCADE_INDICATOR.match(folder_name)
    return m.group(1) if m else ""


def _float_vector(value: Any, path: Path, what: str) -> np.ndarray:
    """A MATLAB row, column or empty array as a flat float64 vector."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CabenchError(f"{path}: {what} is not numeric") from None
    if arr.ndim > 2 or (arr.ndim == 2 and min(arr.shape) > 1):
        raise CabenchError(f"{path}: {what} has shape {arr.shape}, expected a vector")
    return arr.ravel()


# --- population .mat --------------------------------------------------------------------------
def read_population_mat(path: str | Path, frame_rate: float | None = None) -> TraceSet:
    """A population recording: a ``.mat`` file whose ``dF_traces`` is neurons x frames, dF/F.

    The values are taken as fractions (CASCADE's convention); a warning is given if they look
    like percent. Neurons whose trace is all NaN are kept (NaN), with a warning.

    The frame rate (Hz) is, in order: ``frame_rate`` if given; a scalar variable of the file
    named like ``frame_rate``, ``framerate``, ``fs``, ``fps`` or ``sampling_rate``; a
    ``<number>Hz`` in the file name, then in the folder name (``...-7.5Hz/`` -> 7.5). Without
    any, a CabenchError asks for ``--frame-rate``.
    """
    path = _existing_file(path)
    data = _load_mat(path)
    if "dF_traces" not in data:
        raise CabenchError(f"{path}: no dF_traces variable ({_variables(data)})")
    try:
        traces = np.asarray(data["dF_traces"], dtype=np.float64)
    except (TypeError, ValueError):
        raise CabenchError(f"{path}: dF_traces is not a numeric matrix") from None
    if traces.ndim != 2 or traces.shape[1] < 2 or traces.shape[0] < 1:
        raise CabenchError(f"{path}: dF_traces has shape {traces.shape}; expected neurons x "
                           "frames with at least two frames")
    _check_not_all_nan(traces, path)
    if frame_rate is not None:
        rate, rate_source = _positive_rate(frame_rate, path), "argument"
    else:
        rate, rate_source = _population_frame_rate(data, path)
    dead = int(np.isnan(traces).all(axis=1).sum())
    if dead:
        warnings.warn(f"{path}: {dead} of {traces.shape[0]} neurons are all NaN (kept as NaN)",
                      stacklevel=2)
    if _looks_like_percent(traces):
        warnings.warn(f"{path}: dF_traces look like percent, not fractions (99th percentile of "
                      f"|dF/F| above {PERCENT_THRESHOLD:g})", stacklevel=2)
    return TraceSet(
        traces=traces,
        frame_rate=rate,
        source="real",
        params={"reader": "population_mat", "file": str(path), "frame_rate_from": rate_source},
    )


def _population_frame_rate(data: dict[str, Any], path: Path) -> tuple[float, str]:
    """Frame rate (Hz) from a variable of the file or a ``<number>Hz`` in its name."""
    for name, value in data.items():
        if name.startswith("__") or name.lower().replace("_", "") not in _FRAME_RATE_VARIABLES:
            continue
        arr = np.asarray(value)
        if arr.size == 1 and arr.dtype.kind in "iuf":
            return _positive_rate(arr.item(), path), f"variable {name}"
    for name in (path.stem, path.parent.name):
        rates = {float(m) for m in _HZ_IN_NAME.findall(name)}
        if len(rates) == 1:
            return _positive_rate(rates.pop(), path), f"name {name}"
        if len(rates) > 1:
            raise CabenchError(f"{path}: the name {name!r} gives several frame rates; pass "
                               "--frame-rate")
    raise CabenchError(f"{path}: no frame rate in the file or its name; pass --frame-rate (Hz)")


# --- suite2p -----------------------------------------------------------------------------------
def read_suite2p(
    folder: str | Path,
    neuropil_coefficient: float = 0.7,
    baseline_window_s: float = 60.0,
    only_cells: bool = True,
    baseline_sigma_frames: float = 10.0,
    frame_rate: float | None = None,
) -> TraceSet:
    """dF/F of a suite2p output folder (the plane folder, or one holding ``suite2p/plane0``).

    Reads ``F.npy`` and ``Fneu.npy`` (ROIs x frames, raw fluorescence), ``iscell.npy`` and
    ``ops.npy`` (a pickled dict, loaded with ``allow_pickle=True``: read only folders you
    trust). The frame rate is ``ops["fs"]`` (Hz) unless ``frame_rate`` is given.

    - Neuropil correction: ``Fc = F - neuropil_coefficient * Fneu``.
    - Baseline ``F0``: ``Fc`` smoothed with a Gaussian of ``baseline_sigma_frames`` frames,
      then a running minimum and a running maximum, both over ``baseline_window_s`` seconds.
    - ``dF/F = (Fc - F0) / F0`` as a fraction.
    - With ``only_cells``, only ROIs with ``iscell[:, 0] == 1`` are kept. ``cell_names`` are
      the original ROI indices.

    A baseline ``F0 <= 0`` (a dim ROI under bright neuropil) would make dF/F meaningless, so it
    is an error naming the ROIs rather than being clipped; lower ``neuropil_coefficient`` or
    leave such ROIs out. ``spks.npy`` is not read.
    """
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

    plane = _suite2p_plane(Path(folder))
    for name, value in (("neuropil coefficient", neuropil_coefficient),
                        ("baseline sigma (frames)", baseline_sigma_frames)):
        if not math.isfinite(value) or value < 0:
            raise CabenchError(f"{plane}: the {name} must be >= 0, got {value}")
    if not math.isfinite(baseline_window_s) or baseline_window_s <= 0:
        raise CabenchError(f"{plane}: the baseline window must be > 0 s, got {baseline_window_s}")
    f_raw = _load_npy(plane / "F.npy")
    if f_raw.ndim != 2:
        raise CabenchError(f"{plane / 'F.npy'}: shape {f_raw.shape}, expected ROIs x frames")
    n_rois = f_raw.shape[0]
    fc = f_raw.astype(np.float64)
    if neuropil_coefficient:
        fneu = _load_npy(plane / "Fneu.npy")
        if fneu.shape != f_raw.shape:
            raise CabenchError(f"{plane}: Fneu.npy has shape {fneu.shape} but F.npy has "
                               f"{f_raw.shape}")
        fc -= neuropil_coefficient * fneu
    rois = np.arange(n_rois)
    if only_cells:
        if not (plane / "iscell.npy").is_file():
            raise CabenchError(f"{plane}: no iscell.npy; use only_cells=False to read all ROIs")
        iscell = _load_npy(plane / "iscell.npy")
        flags = iscell[:, 0] if iscell.ndim == 2 else iscell
        if iscell.ndim not in (1, 2) or flags.shape != (n_rois,):
            raise CabenchError(f"{plane / 'iscell.npy'}: shape {iscell.shape} does not match "
                               f"{n_rois} ROIs")
        rois = np.flatnonzero(flags == 1)
        if rois.size == 0:
            raise CabenchError(f"{plane}: iscell.npy marks no ROI as a cell")
        fc = fc[rois]
    if frame_rate is not None:
        rate = _positive_rate(frame_rate, plane)
    else:
        rate = _suite2p_rate(plane)
    _check_not_all_nan(fc, plane / "F.npy")
    window = max(1, int(round(baseline_window_s * rate)))
    smooth = gaussian_filter1d(fc, baseline_sigma_frames, axis=1, mode="nearest") \
        if baseline_sigma_frames > 0 else fc
    f0 = maximum_filter1d(minimum_filter1d(smooth, window, axis=1, mode="nearest"),
                          window, axis=1, mode="nearest")
    bad = np.flatnonzero(np.any(f0 <= 0, axis=1))
    if bad.size:
        listed = ", ".join(str(r) for r in rois[bad][:10]) + (", ..." if bad.size > 10 else "")
        raise CabenchError(
            f"{plane}: {bad.size} ROI(s) have a baseline F0 <= 0 after neuropil subtraction "
            f"(ROIs {listed}; lowest F0 {np.nanmin(f0):.3g}); lower the neuropil coefficient "
            f"(now {neuropil_coefficient:g})"
        )
    return TraceSet(
        traces=(fc - f0) / f0,
        frame_rate=rate,
        cell_names=[str(r) for r in rois],
        source="real",
        params={
            "reader": "suite2p",
            "folder": str(plane),
            "neuropil_coefficient": float(neuropil_coefficient),
            "baseline_window_s": float(baseline_window_s),
            "baseline_sigma_frames": float(baseline_sigma_frames),
            "only_cells": bool(only_cells),
            "n_rois": int(n_rois),
        },
    )


def _suite2p_plane(folder: Path) -> Path:
    """The folder holding ``F.npy``: ``folder``, ``folder/plane0`` or ``folder/suite2p/plane0``."""
    if not folder.is_dir():
        raise CabenchError(f"{folder}: no such folder")
    for plane in (folder, folder / "plane0", folder / "suite2p" / "plane0"):
        if (plane / "F.npy").is_file():
            others = sorted(p.name for p in plane.parent.glob("plane[1-9]*") if p.is_dir())
            if plane != folder and others:
                warnings.warn(f"{folder}: reading plane0 only; pass a plane folder to read "
                              f"{', '.join(others)}", stacklevel=3)
            return plane
    raise CabenchError(f"{folder}: not a suite2p folder (no F.npy, plane0/F.npy or "
                       "suite2p/plane0/F.npy)")


def _suite2p_rate(plane: Path) -> float:
    ops_path = plane / "ops.npy"
    if not ops_path.is_file():
        raise CabenchError(f"{plane}: no ops.npy to take the frame rate from; pass --frame-rate")
    ops = _load_npy(ops_path, allow_pickle=True)
    try:
        ops = ops.item()
        fs = ops["fs"]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise CabenchError(f"{ops_path}: not a suite2p ops dict with 'fs'") from None
    return _positive_rate(fs, ops_path)


# --- plain matrices ----------------------------------------------------------------------------
def read_matrix(
    path: str | Path,
    frame_rate: float | None,
    layout: str = "cells_frames",
    units: str = "fraction",
) -> TraceSet:
    """dF/F from a ``.npy`` or ``.csv`` matrix.

    2-D arrays are cells x frames (``layout="cells_frames"``) or frames x cells
    (``"frames_cells"``); a 3-D ``.npy`` is trials x cells x frames (trials x frames x cells
    with ``"frames_cells"``). A CSV holds numbers only, comma-, semicolon-, tab- or
    space-separated, with an optional non-numeric header row that is skipped; ``nan`` cells
    stay NaN. ``frame_rate`` (Hz) is required. ``units="percent"`` divides by 100; with
    ``units="fraction"`` data that look like percent (99th percentile of ``|values|`` above
    20) are refused.
    """
    path = _existing_file(path)
    if layout not in ("cells_frames", "frames_cells"):
        raise CabenchError(f"layout must be cells_frames or frames_cells, got {layout!r}")
    if units not in ("fraction", "percent"):
        raise CabenchError(f"units must be fraction or percent, got {units!r}")
    if frame_rate is None:
        raise CabenchError(f"{path}: a matrix does not record its frame rate; pass --frame-rate")
    rate = _positive_rate(frame_rate, path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = _load_npy(path)
    elif suffix == ".csv":
        data = _load_csv(path)
    else:
        raise CabenchError(f"{path}: a matrix must be .npy or .csv")
    if data.dtype.kind not in "biuf":
        raise CabenchError(f"{path}: not a numeric array (dtype {data.dtype})")
    if data.ndim not in (2, 3):
        raise CabenchError(f"{path}: array of shape {data.shape}; expected 2-D (cells x frames) "
                           "or 3-D (trials x cells x frames)")
    if 0 in data.shape:
        raise CabenchError(f"{path}: the array is empty (shape {data.shape})")
    data = data.astype(np.float64)
    if layout == "frames_cells":
        data = np.swapaxes(data, -1, -2)
    _check_not_all_nan(data, path)
    if units == "percent":
        data = data / 100.0
    elif _looks_like_percent(data):
        raise CabenchError(f"{path}: the values look like percent (99th percentile of |dF/F| "
                           f"above {PERCENT_THRESHOLD:g}); pass units=percent (--units percent)")
    return TraceSet(
        traces=data,
        frame_rate=rate,
        source="real",
        params={"reader": "matrix", "file": str(path), "layout": layout, "units": units},
    )


def _load_csv(path: Path) -> np.ndarray:
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise CabenchError(f"{path}: not a readable text CSV ({e})") from None
    if not lines:
        raise CabenchError(f"{path}: the file holds no numbers")
    delimiter = next((d for d in (",", ";", "\t") if d in lines[0]), None)

    def numbers(line: str) -> list[float]:
        return [float(v) for v in (line.split(delimiter) if delimiter else line.split())]

    try:
        numbers(lines[0])
    except ValueError:
        lines = lines[1:]  # a header row
    try:
        rows = [numbers(ln) for ln in lines]
    except ValueError as e:
        raise CabenchError(f"{path}: not a numeric CSV ({e})") from None
    if not rows:
        raise CabenchError(f"{path}: the file holds no numbers")
    if len({len(r) for r in rows}) != 1:
        raise CabenchError(f"{path}: rows have different numbers of values")
    return np.array(rows, dtype=np.float64)


# --- dispatcher ----------------------------------------------------------------------------------
def read_traces(path: str | Path, frame_rate: float | None = None,
                **options: Any) -> list[TraceSet]:
    """Read any supported format into a list of TraceSets (see the module docstring).

    ``frame_rate`` (Hz) is needed for ``.npy``/``.csv`` matrices and overrides the rate of a
    population ``.mat`` or a suite2p folder; formats that record a rate per recording (trace
    files, CASCADE) ignore it. ``options`` go to the chosen reader (``layout``, ``units`` for
    matrices; ``neuropil_coefficient``, ``baseline_window_s``, ``only_cells``,
    ``baseline_sigma_frames`` for suite2p); an option the reader does not take is an error.
    """
    path = Path(path)
    if not path.exists():
        raise CabenchError(f"{path}: no such file or folder")
    if path.is_dir():
        if any((p / "F.npy").is_file()
               for p in (path, path / "plane0", path / "suite2p" / "plane0")):
            return [_call(read_suite2p, path, options, frame_rate=frame_rate)]
        mats = sorted(path.glob("*.mat"))
        if mats and "CAttached" in _mat_variable_names(mats[0]):
            return _nonempty(_call(read_cascade_folder, path, options), path)
        raise CabenchError(f"{path}: unknown folder; supported: {SUPPORTED_FORMATS}")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return [_call(TraceSet.load, path, options)]
    if suffix == ".mat":
        names = _mat_variable_names(path)
        if "CAttached" in names:
            return _nonempty(_call(read_cascade_file, path, options), path)
        if "dF_traces" in names:
            return [_call(read_population_mat, path, options, frame_rate=frame_rate)]
        raise CabenchError(f"{path}: a .mat file without CAttached or dF_traces "
                           f"(variables: {', '.join(names) or 'none'})")
    if suffix in (".npy", ".csv"):
        return [_call(read_matrix, path, options, frame_rate=frame_rate)]
    raise CabenchError(f"{path}: unknown format; supported: {SUPPORTED_FORMATS}")


def _call(reader: Any, path: Path, options: dict[str, Any], **fixed: Any) -> Any:
    """``reader(path, **fixed, **options)``, refusing options the reader does not take."""
    accepted = list(inspect.signature(reader).parameters)[1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(p for p in accepted if p not in fixed) or "none"
        raise CabenchError(f"{path}: option(s) {', '.join(unknown)} do not apply to this format "
                           f"(valid: {valid})")
    return reader(path, **fixed, **options)


def _nonempty(sets: list[TraceSet], path: Path) -> list[TraceSet]:
    if not sets:
        raise CabenchError(f"{path}: no usable recording")
    return sets


# --- shared helpers ------------------------------------------------------------------------------
def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise CabenchError(f"{path}: no such file")
    if not path.is_file():
        raise CabenchError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CabenchError(f"{path}: the file is empty")
    return path


def _load_mat(path: Path) -> dict[str, Any]:
    """``scipy.io.loadmat`` (no ``squeeze_me``: it breaks single-recording files)."""
    from scipy.io import loadmat

    path = _existing_file(path)
    _refuse_v73(path)
    try:
        return loadmat(path)
    except Exception as e:  # scipy raises many types for corrupt files
        raise CabenchError(f"{path}: not a readable MATLAB file ({_reason(e)})") from None


def _mat_variable_names(path: Path) -> list[str]:
    from scipy.io import whosmat

    path = _existing_file(path)
    _refuse_v73(path)
    try:
        return [name for name, _, _ in whosmat(path)]
    except Exception as e:  # scipy raises many types for corrupt files
        raise CabenchError(f"{path}: not a readable MATLAB file ({_reason(e)})") from None


def _refuse_v73(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 7.3") or head.startswith(b"\x89HDF"):
        raise CabenchError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it "
                           "in MATLAB with save(..., '-v7')")


def _variables(data: dict[str, Any]) -> str:
    names = [k for k in data if not k.startswith("__")]
    return "variables: " + (", ".join(names) if names else "none")


def _load_npy(path: Path, allow_pickle: bool = False) -> np.ndarray:
    path = _existing_file(path)
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except Exception as e:  # numpy raises many types for corrupt files
        raise CabenchError(f"{path}: not a readable .npy array ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _positive_rate(value: Any, where: Path) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise CabenchError(f"{where}: frame rate {value!r} is not a number") from None
    if not math.isfinite(rate) or rate <= 0:
        raise CabenchError(f"{where}: frame rate must be a positive number of Hz, got {value}")
    return rate


def _check_not_all_nan(data: np.ndarray, where: Path) -> None:
    if not np.isfinite(data).any():
        raise CabenchError(f"{where}: no finite values (all NaN or infinite)")


def _looks_like_percent(data: np.ndarray) -> bool:
    values = np.abs(data[np.isfinite(data)])
    return values.size > 0 and float(np.percentile(values, 99)) > PERCENT_THRESHOLD
