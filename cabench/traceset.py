"""The trace-file format: :class:`TraceSet` in memory, one HDF5 file on disk.

Layout of a trace file (HDF5, written by h5py):

========================  ========================================================================
``traces``                float32 ``(trials, cells, frames)``, dF/F as a fraction
``frame_rate``            scalar float64, Hz; frame ``k`` is sampled at ``frame_times[k]``
``frame_times``           optional float64 ``(frames,)``, seconds; default ``k / frame_rate``
``spike_times``           optional float64, flat ground-truth spike times in seconds, same clock
                          as the frame times, cell-major: cell 0 trial 0, cell 0 trial 1, ...
``spike_offsets``         int64 ``(cells * trials + 1,)``: spikes of (trial t, cell c) are
                          ``spike_times[offsets[i]:offsets[i + 1]]`` with ``i = c * trials + t``
``calcium``               optional float32 ``(trials, cells, frames)``: noiseless dF/F
``cell_names``            optional strings ``(cells,)``
attributes                ``format``, ``format_version``, ``source`` (simulated/real/gan),
                          ``indicator``, ``seed``, ``params`` (JSON), ``cabench_version``,
                          ``command`` (no timestamp: the same command gives the same bytes)
========================  ========================================================================

Cell-major spike order lets a simulation stream blocks of cells (all trials) to disk.
Files are written to a temporary name in the same folder and renamed when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cabench.errors import CabenchError

FORMAT_NAME = "cabench-traces"
FORMAT_VERSION = 1
SOURCES = ("simulated", "real", "gan")


def _version() -> str:
    from cabench import __version__

    return __version__


def command_line() -> str:
    """The command line of this process, as a shell would quote it."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


@dataclass
class TraceSet:
    """A set of calcium traces ``(trials, cells, frames)`` with optional ground-truth spikes.

    ``traces`` and ``calcium`` are float32 dF/F fractions, ``frame_rate`` in Hz, spike times in
    seconds on the same clock as ``frame_times`` (seconds). See the module docstring for the
    ragged layout of ``spike_times`` / ``spike_offsets``.
    """

    traces: np.ndarray
    frame_rate: float
    spike_times: np.ndarray | None = None
    spike_offsets: np.ndarray | None = None
    calcium: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    cell_names: list[str] | None = None
    source: str = "real"
    indicator: str = ""
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    cabench_version: str = ""

    def __post_init__(self) -> None:
        traces = np.asarray(self.traces)
        if traces.ndim == 2:
            traces = traces[None]
        if traces.ndim != 3:
            raise CabenchError(
                f"traces must be (trials, cells, frames), got an array of shape {traces.shape}"
            )
        self.traces = np.ascontiguousarray(traces, dtype=np.float32)
        fr = float(self.frame_rate)
        if not np.isfinite(fr) or fr <= 0:
            raise CabenchError(f"frame rate must be a positive number of Hz, got {self.frame_rate}")
        self.frame_rate = fr
        if self.source not in SOURCES:
            raise CabenchError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.calcium is not None:
            self.calcium = np.ascontiguousarray(self.calcium, dtype=np.float32).reshape(
                self.traces.shape
            )
        if self.frame_times is not None:
            self.frame_times = np.asarray(self.frame_times, dtype=np.float64).ravel()
            if self.frame_times.shape != (self.n_frames,):
                raise CabenchError(
                    f"frame_times has {self.frame_times.size} entries for {self.n_frames} frames"
                )
        if (self.spike_times is None) != (self.spike_offsets is None):
            raise CabenchError("spike_times and spike_offsets must be given together")
        if self.spike_times is not None:
            self.spike_times = np.asarray(self.spike_times, dtype=np.float64).ravel()
            self.spike_offsets = np.asarray(self.spike_offsets, dtype=np.int64).ravel()
            n = self.n_cells * self.n_trials
            off = self.spike_offsets
            if off.shape != (n + 1,) or off[0] != 0 or off[-1] != self.spike_times.size:
                raise CabenchError(
                    f"spike_offsets must have {n + 1} entries from 0 to {self.spike_times.size}"
                )
            if np.any(np.diff(off) < 0):
                raise CabenchError("spike_offsets must not decrease")
        if self.cell_names is not None:
            self.cell_names = [str(c) for c in self.cell_names]
            if len(self.cell_names) != self.n_cells:
                raise CabenchError(
                    f"{len(self.cell_names)} cell names given for {self.n_cells} cells"
                )

    # --- shape -----------------------------------------------------------------------------
    @property
    def n_trials(self) -> int:
        return self.traces.shape[0]

    @property
    def n_cells(self) -> int:
        return self.traces.shape[1]

    @property
    def n_frames(self) -> int:
        return self.traces.shape[2]

    @property
    def duration(self) -> float:
        """Duration of one trial in seconds (frames / frame rate)."""
        return self.n_frames / self.frame_rate

    @property
    def has_spikes(self) -> bool:
        return self.spike_times is not None

    def times(self) -> np.ndarray:
        """Frame times in seconds, ``(frames,)``."""
        if self.frame_times is not None:
            return self.frame_times
        return np.arange(self.n_frames) / self.frame_rate

    # --- spikes ----------------------------------------------------------------------------
    def spikes(self, trial: int, cell: int) -> np.ndarray:
        """Ground-truth spike times (seconds) of one trial and cell."""
        if self.spike_times is None:
            raise CabenchError("this trace set has no ground-truth spikes")
        i = cell * self.n_trials + trial
        return self.spike_times[self.spike_offsets[i] : self.spike_offsets[i + 1]]

    def spike_counts(self) -> np.ndarray:
        """Number of spikes per (trial, cell), int64 ``(trials, cells)``."""
        if self.spike_offsets is None:
            raise CabenchError("this trace set has no ground-truth spikes")
        return np.diff(self.spike_offsets).reshape(self.n_cells, self.n_trials).T

    def mean_rate_hz(self) -> np.ndarray:
        """Mean firing rate (Hz) per cell over all trials, ``(cells,)``."""
        return self.spike_counts().sum(axis=0) / (self.n_trials * self.duration)

    def binned_spikes(self) -> np.ndarray:
        """Spike counts per frame, float32 ``(trials, cells, frames)``.

        Bin edges lie halfway between frame times; the first and last bins are as wide as their
        neighbours. Spikes outside the recording are dropped.
        """
        return bin_spike_times(
            self.spike_times, self.spike_offsets, self.times(), self.n_trials, self.n_cells
        )

    # --- selection -------------------------------------------------------------------------
    def select(
        self,
        trials: Sequence[int] | slice | None = None,
        cells: Sequence[int] | slice | None = None,
        start: float | None = None,
        stop: float | None = None,
    ) -> TraceSet:
        """A new TraceSet with the given trials, cells and time window ``[start, stop)`` (s).

        Times keep their clock: spike times and frame times of the selection are unchanged, so
        that a selection lines up with the original.
        """
        t_idx = np.arange(self.n_trials)[trials if trials is not None else slice(None)]
        c_idx = np.arange(self.n_cells)[cells if cells is not None else slice(None)]
        t_idx, c_idx = np.atleast_1d(t_idx), np.atleast_1d(c_idx)
        times = self.times()
        keep = np.ones(self.n_frames, bool)
        if start is not None:
            keep &= times >= start
        if stop is not None:
            keep &= times < stop
        f_idx = np.flatnonzero(keep)
        if f_idx.size == 0 or t_idx.size == 0 or c_idx.size == 0:
            raise CabenchError("the selection is empty")
        f_sl = slice(f_idx[0], f_idx[-1] + 1)
        traces = self.traces[np.ix_(t_idx, c_idx)][..., f_sl]
        calcium = None if self.calcium is None else self.calcium[np.ix_(t_idx, c_idx)][..., f_sl]
        spike_times = spike_offsets = None
        if self.spike_times is not None:
            lo = times[f_idx[0]] - 0.5 / self.frame_rate if start is None else start
            hi = times[f_idx[-1]] + 0.5 / self.frame_rate if stop is None else stop
            parts = []
            for c in c_idx:
                for t in t_idx:
                    s = self.spikes(int(t), int(c))
                    if start is not None or stop is not None:
                        s = s[(s >= lo) & (s < hi)]
                    parts.append(s)
            spike_times, spike_offsets = ragged(parts)
        return replace(
            self,
            traces=traces,
            calcium=calcium,
            spike_times=spike_times,
            spike_offsets=spike_offsets,
            frame_times=times[f_sl].copy(),
            cell_names=None if self.cell_names is None else [self.cell_names[i] for i in c_idx],
            params=dict(self.params),
        )

    # --- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the trace set to an HDF5 file, atomically (temporary name, then rename)."""
        with TraceWriter(
            path,
            n_trials=self.n_trials,
            n_cells=self.n_cells,
            n_frames=self.n_frames,
            frame_rate=self.frame_rate,
            with_spikes=self.has_spikes,
            with_calcium=self.calcium is not None,
            frame_times=self.frame_times,
            cell_names=self.cell_names,
            source=self.source,
            indicator=self.indicator,
            seed=self.seed,
            params=self.params,
            command=self.command or None,
            cabench_version=self.cabench_version or None,
            overwrite=overwrite,
        ) as w:
            spikes = (self.spike_times, self.spike_offsets) if self.has_spikes else None
            w.write_cells(0, self.traces, calcium=self.calcium, spikes=spikes)
        return Path(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        cells: slice | None = None,
        trials: slice | None = None,
    ) -> TraceSet:
        """Read a trace file, optionally only a slice of cells and/or trials."""
        path = Path(path)
        with open_h5(path, FORMAT_NAME, FORMAT_VERSION, "trace") as f:
            if "traces" not in f:
                raise CabenchError(f"{path}: not a cabench trace file")
            n_trials, n_cells, _ = f["traces"].shape
            tsl = trials if trials is not None else slice(None)
            csl = cells if cells is not None else slice(None)
            traces = f["traces"][tsl, csl, :]
            calcium = f["calcium"][tsl, csl, :] if "calcium" in f else None
            spike_times = spike_offsets = None
            if "spike_times" in f:
                off = f["spike_offsets"][:]
                all_times = f["spike_times"]
                t_idx = range(n_trials)[tsl]
                c_idx = range(n_cells)[csl]
                if len(t_idx) == n_trials and len(c_idx) == n_cells:
                    spike_times, spike_offsets = all_times[:], off
                else:
                    lo, hi = off[c_idx[0] * n_trials], off[(c_idx[-1] + 1) * n_trials]
                    block = all_times[lo:hi]
                    parts = [
                        block[off[c * n_trials + t] - lo : off[c * n_trials + t + 1] - lo]
                        for c in c_idx
                        for t in t_idx
                    ]
                    spike_times, spike_offsets = ragged(parts)
            names = None
            if "cell_names" in f:
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["cell_names"]]
                names = names[csl]
            a = f.attrs
            seed = a.get("seed", -1)
            return cls(
                traces=traces,
                frame_rate=float(f["frame_rate"][()]),
                spike_times=spike_times,
                spike_offsets=spike_offsets,
                calcium=calcium,
                frame_times=f["frame_times"][:] if "frame_times" in f else None,
                cell_names=names,
                source=str(a.get("source", "real")),
                indicator=str(a.get("indicator", "")),
                seed=None if int(seed) < 0 else int(seed),
                params=json.loads(a.get("params", "{}")),
                command=str(a.get("command", "")),
                cabench_version=str(a.get("cabench_version", "")),
            )


def ragged(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 array and int64 offsets (``len(parts) + 1``) of a list of arrays."""
    counts = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
    return flat, offsets


def frame_edges(frame_times: np.ndarray) -> np.ndarray:
    """Bin edges (s) halfway between frame times, ``(frames + 1,)``."""
    t = np.asarray(frame_times, dtype=np.float64)
    if t.size == 1:
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mid = 0.5 * (t[1:] + t[:-1])
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def bin_spike_times(
    spike_times: np.ndarray,
    spike_offsets: np.ndarray,
    frame_times: np.ndarray,
    n_trials: int,
    n_cells: int,
) -> np.ndarray:
    """Count cell-major ragged spike times into frames, float32 ``(trials, cells, frames)``."""
    if spike_times is None:
        raise CabenchError("this trace set has no ground-truth spikes")
    edges = frame_edges(frame_times)
    n_frames = len(edges) - 1
    idx = np.searchsorted(edges, spike_times, side="right") - 1
    row = np.repeat(np.arange(n_cells * n_trials), np.diff(spike_offsets))
    ok = (idx >= 0) & (idx < n_frames)
    counts = np.bincount(
        row[ok] * n_frames + idx[ok], minlength=n_cells * n_trials * n_frames
    ).astype(np.float32)
    return counts.reshape(n_cells, n_trials, n_frames).transpose(1, 0, 2).copy()


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, format_name: str, format_version: int, kind: str
            ) -> Iterator[Any]:
    """Open a cabench HDF5 file for reading (an ``h5py.File``), after checking that it exists,
    is HDF5 and carries ``format_name`` in a version this cabench reads (``kind`` names the
    file kind in the one-line errors, e.g. "trace")."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise CabenchError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CabenchError(f"{path}: not a readable HDF5 {kind} file ({e})") from None
    with f:
        if f.attrs.get("format") != format_name:
            raise CabenchError(f"{path}: not a cabench {kind} file")
        version = int(f.attrs.get("format_version", 0))
        if version > format_version:
            raise CabenchError(f"{path}: {kind} format version {version} is newer than this "
                               f"cabench understands ({format_version}); upgrade cabench")
        yield f


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CabenchError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise CabenchError(f"{path} is a folder, not a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CabenchError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CabenchError(f"cannot write {path}: folder {parent} is not writable")
    tmp = parent / f".{path.name}.tmp{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class TraceWriter:
    """Stream a trace file to disk block by block of cells (all trials at once).

    Use as a context manager; the file appears under its final name only when the block exits
    without error, so an interrupted run leaves no half-written file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_trials: int,
        n_cells: int,
        n_frames: int,
        frame_rate: float,
        with_spikes: bool = False,
        with_calcium: bool = False,
        frame_times: np.ndarray | None = None,
        cell_names: Sequence[str] | None = None,
        source: str = "simulated",
        indicator: str = "",
        seed: int | None = None,
        params: dict[str, Any] | None = None,
        command: str | None = None,
        cabench_version: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if min(n_trials, n_cells, n_frames) < 1:
            raise CabenchError(
                f"a trace file needs at least one trial, cell and frame, got "
                f"({n_trials}, {n_cells}, {n_frames})"
            )
        if source not in SOURCES:
            raise CabenchError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.path = Path(path)
        self.shape = (n_trials, n_cells, n_frames)
        self.with_spikes, self.with_calcium = with_spikes, with_calcium
        self._meta = dict(
            frame_rate=float(frame_rate),
            frame_times=frame_times,
            cell_names=cell_names,
            attrs=dict(
                format=FORMAT_NAME,
                format_version=FORMAT_VERSION,
                source=source,
                indicator=indicator or "",
                seed=-1 if seed is None else int(seed),
                params=json.dumps(params or {}, sort_keys=True, default=_json_default),
                cabench_version=cabench_version or _version(),
                command=command if command is not None else command_line(),
            ),
        )
        self.overwrite = overwrite
        self._atomic = None
        self._file = None
        self._next_cell = 0
        self._n_spikes = 0

    def __enter__(self) -> TraceWriter:
        import h5py

        self._atomic = atomic_path(self.path, overwrite=self.overwrite)
        tmp = self._atomic.__enter__()
        try:
            f = self._file = h5py.File(tmp, "w")
            t, c, n = self.shape
            chunks = (1, min(c, 16), min(n, 16384))
            f.create_dataset("traces", shape=self.shape, dtype="f4", chunks=chunks)
            if self.with_calcium:
                f.create_dataset("calcium", shape=self.shape, dtype="f4", chunks=chunks)
            f.create_dataset("frame_rate", data=self._meta["frame_rate"])
            if self._meta["frame_times"] is not None:
                f.create_dataset("frame_times", data=np.asarray(self._meta["frame_times"], "f8"))
            if self._meta["cell_names"] is not None:
                f.create_dataset(
                    "cell_names", data=[str(s) for s in self._meta["cell_names"]],
                    dtype=h5py.string_dtype(),
                )
            if self.with_spikes:
                f.create_dataset("spike_times", shape=(0,), maxshape=(None,), dtype="f8",
                                 chunks=(65536,))
                f.create_dataset("spike_offsets", shape=(t * c + 1,), dtype="i8")
            f.attrs.update(self._meta["attrs"])
        except BaseException:
            self._abort()
            raise
        return self

    def write_cells(
        self,
        start: int,
        traces: np.ndarray,
        calcium: np.ndarray | None = None,
        spikes: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Write cells ``start:start + traces.shape[1]`` of all trials.

        Blocks must come in order. ``spikes`` is the ragged pair ``(times, offsets)`` (s; see
        :func:`ragged`) of this block's cells, cell-major: one entry per (cell, trial).
        """
        t, c, n = self.shape
        k = traces.shape[1]
        if start != self._next_cell or traces.shape != (t, k, n):
            raise ValueError(f"expected block of cells from {self._next_cell} with shape "
                             f"({t}, k, {n}), got start {start} and shape {traces.shape}")
        f = self._file
        f["traces"][:, start : start + k, :] = traces
        if self.with_calcium:
            f["calcium"][:, start : start + k, :] = calcium
        if self.with_spikes:
            flat, off = spikes
            ds = f["spike_times"]
            ds.resize((self._n_spikes + flat.size,))
            ds[self._n_spikes :] = flat
            f["spike_offsets"][start * t + 1 : (start + k) * t + 1] = off[1:] + self._n_spikes
            self._n_spikes += flat.size
        self._next_cell = start + k

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._next_cell != self.shape[1]:
            exc = RuntimeError(f"only {self._next_cell} of {self.shape[1]} cells were written")
            self._abort()
            raise exc
        if exc_type is not None:
            self._abort(exc_type, exc, tb)
            return
        self._file.close()
        self._atomic.__exit__(None, None, None)

    def _abort(self, *exc_info) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        if self._atomic is not None:
            info = exc_info if exc_info else (RuntimeError, RuntimeError("aborted"), None)
            with contextlib.suppress(BaseException):
                self._atomic.__exit__(*info)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in trace-file parameters")
