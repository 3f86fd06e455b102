"""Run one spike-inference method on every recording of a trace file; an estimates file.

Units: input traces are dF/F as a fraction, frame rates in Hz; estimates are **expected
spikes per frame** (float32, NaN for bad rows and missing frames), spike times and run times
in seconds.

Layout of an estimates file (HDF5)
==================================

=============================  ===================================================================
root attributes                ``format`` ("cabench-estimates"), ``format_version``,
                               ``cabench_version``, ``command``, ``input`` (the path read),
                               ``method``, ``method_version``, ``params`` (JSON: the resolved
                               parameters), ``unit`` ("expected spikes per frame")
``recordings/0000``, ...       one group per recording, in the order the reader gives them
``.../estimate``               float32 ``(trials, cells, frames)``, expected spikes per frame
``.../spike_times``            float64, flat inferred spike times (s) on the recording's clock
``.../spike_offsets``          int64 ``(cells * trials + 1,)``: cell-major as in a trace file,
                               row ``i = c * trials + t`` is ``spike_times[off[i]:off[i + 1]]``
``.../cell_names``             optional strings ``(cells,)``
``.../frame_times``            optional float64 ``(frames,)`` (s), when the recording has them
group attributes               ``name`` (as ``run-suite`` names the recording), ``frame_rate``
                               (Hz), ``seconds`` (run time of the method), ``warnings`` (JSON)
=============================  ===================================================================

Ground-truth spikes of the input are not copied: the file holds estimates only. Methods with an
``indicator`` parameter get the recordings' indicator when the method knows it (a preset
models it, for most) and all recordings agree (as in a suite), unless it is given. numpy's
global generator is seeded with 0 for each recording (some wrapped methods draw from it), so a
run is reproducible.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cabench.errors import CabenchError

FORMAT_NAME = "cabench-estimates"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class Estimates:
    """One recording of an estimates file.

    ``estimate``: float32 ``(trials, cells, frames)`` in expected spikes per frame;
    ``spike_times`` (s) / ``spike_offsets``: ragged, cell-major (see :meth:`spikes`);
    ``frame_rate`` in Hz; ``frame_times`` (s) when the recording had its own clock.
    """

    name: str
    estimate: np.ndarray
    frame_rate: float
    spike_times: np.ndarray
    spike_offsets: np.ndarray
    cell_names: list[str] | None
    frame_times: np.ndarray | None
    method: str
    method_version: str
    params: dict[str, Any]
    warnings: list[str]
    seconds: float

    def spikes(self, trial: int, cell: int) -> np.ndarray:
        """Inferred spike times (s) of one trial and cell."""
        i = cell * self.estimate.shape[0] + trial
        return self.spike_times[self.spike_offsets[i] : self.spike_offsets[i + 1]]


def infer_file(
    path: str | os.PathLike,
    method: str,
    params: dict[str, Any],
    output: str | os.PathLike,
    frame_rate: float | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **options: str,
) -> Path:
    """Infer spikes in every recording of ``path`` with ``method``; write an estimates file.

    ``path``: anything :func:`~cabench.readers.read_traces` reads (``frame_rate`` in Hz is
    needed for .npy/.csv; ``options`` go to the reader, e.g. ``units="percent"``).
    ``params``: method parameters; string values are parsed as on the command line (``"0.3"``,
    ``"true"``, ``"none"``). ``progress(done, total)`` is called after each recording with
    ``done=1``. The file appears under ``output`` only when complete. Returns ``output``.
    """
    import h5py

    from cabench import __version__
    from cabench.benchmark.methods import get_method, method_class
    from cabench.benchmark.methods.base import global_numpy_seed
    from cabench.benchmark.suite import on_clock, recording_names
    from cabench.cli import invocation
    from cabench.readers import read_traces
    from cabench.traceset import atomic_path

    sets = read_traces(path, frame_rate=frame_rate, **options)
    cls = method_class(method)
    values = cls.parse_params(params)
    if "indicator" in cls.params and "indicator" not in values:
        found = {cls.indicator_value(ts.indicator) for ts in sets}
        if len(found) == 1 and None not in found:
            values["indicator"] = found.pop()
    m = get_method(method, **values)  # unknown parameters: CabenchError listing valid ones
    names = recording_names(sets)
    first = None
    with atomic_path(output, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        for i, ts in enumerate(sets):
            with global_numpy_seed(0):
                r = m.infer(ts.traces, ts.frame_rate)
            first = r if first is None else first
            if ts.frame_times is not None:  # methods count k / frame_rate: use the real clock
                r = dataclasses.replace(r, spike_times=[
                    on_clock(x, ts.frame_rate, ts.frame_times) for x in r.spike_times])
            times, offsets = r.ragged()
            g = f.create_group(f"recordings/{i:04d}")
            t, c, n = r.estimate.shape
            g.create_dataset("estimate", data=r.estimate, compression="gzip", shuffle=True,
                             chunks=(1, min(c, 16), min(n, 16384)))
            g.create_dataset("spike_times", data=times.astype(np.float64))
            g.create_dataset("spike_offsets", data=offsets.astype(np.int64))
            if ts.cell_names is not None:
                g.create_dataset("cell_names", data=ts.cell_names, dtype=h5py.string_dtype())
            if ts.frame_times is not None:
                g.create_dataset("frame_times", data=ts.frame_times)
            g.attrs.update(name=names[i], frame_rate=r.frame_rate, seconds=r.seconds,
                           warnings=json.dumps(r.warnings))
            if progress is not None:
                progress(1, len(sets))
        f.attrs.update(
            format=FORMAT_NAME, format_version=FORMAT_VERSION, cabench_version=__version__,
            command=invocation(), input=str(path), method=first.method,
            method_version=first.version, params=json.dumps(first.params, sort_keys=True),
            unit=first.unit,
        )
    return Path(output)


def read_estimates(path: str | os.PathLike) -> list[Estimates]:
    """The recordings of an estimates file written by :func:`infer_file`, in order.

    CabenchError (one line) for a missing file or one that is not a cabench estimates file.
    """
    from cabench.traceset import open_h5

    path = Path(path)
    with open_h5(path, FORMAT_NAME, FORMAT_VERSION, "estimates") as f:
        if "recordings" not in f or not len(f["recordings"]):
            raise CabenchError(f"{path}: the estimates file holds no recordings")
        try:
            a = f.attrs
            out = []
            for key in sorted(f["recordings"]):
                g = f["recordings"][key]
                names = g["cell_names"].asstr()[:].tolist() if "cell_names" in g else None
                out.append(Estimates(
                    name=str(g.attrs["name"]),
                    estimate=g["estimate"][:],
                    frame_rate=float(g.attrs["frame_rate"]),
                    spike_times=g["spike_times"][:],
                    spike_offsets=g["spike_offsets"][:],
                    cell_names=names,
                    frame_times=g["frame_times"][:] if "frame_times" in g else None,
                    method=str(a["method"]),
                    method_version=str(a["method_version"]),
                    params=json.loads(a["params"]),
                    warnings=json.loads(g.attrs["warnings"]),
                    seconds=float(g.attrs["seconds"]),
                ))
        except (KeyError, OSError, ValueError) as e:
            raise CabenchError(f"{path}: damaged estimates file ({e})") from None
    return out
