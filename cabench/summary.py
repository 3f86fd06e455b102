"""Human-readable summaries of trace files and recordings (``cabench info``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceSet

_CHUNK_VALUES = 2**25  # float32 values read at a time from a large trace file


def describe(path: str | Path, frame_rate: float | None = None,
             per_cell: bool | None = None, **options: str) -> Iterator[str]:
    """Lines describing ``path`` (a trace file or any format :mod:`cabench.readers` reads;
    ``options`` go to the reader, e.g. ``units="percent"`` for a matrix)."""
    from cabench.readers import read_traces

    path = Path(path)
    if path.suffix in (".h5", ".hdf5") and not options:
        yield from _describe_file(path, per_cell)
        return
    sets = read_traces(path, frame_rate=frame_rate, **options)
    if len(sets) == 1:
        yield f"{path}"
        yield from _describe(sets[0], noise_level_nu(sets[0].traces, sets[0].frame_rate),
                             per_cell)
        return
    yield f"{path}: {len(sets)} recordings"
    w = max(len(ts.cell_names[0]) if ts.cell_names else 0 for ts in sets) + 1
    yield f"{'recording':<{w}} {'cells':>5} {'frames':>7} {'rate_Hz':>8} {'dur_s':>7} " \
          f"{'nu':>6} {'spikes_Hz':>9}"
    nus = []
    for ts in sets:
        nu = float(np.nanmedian(noise_level_nu(ts.traces, ts.frame_rate)))
        nus.append(nu)
        name = ts.cell_names[0] if ts.cell_names else ""
        fr = f"{np.mean(ts.mean_rate_hz()):9.2f}" if ts.has_spikes else f"{'-':>9}"
        yield (f"{name:<{w}} {ts.n_cells:>5} {ts.n_frames:>7} {ts.frame_rate:>8.2f} "
               f"{ts.duration:>7.1f} {nu:>6.2f} {fr}")
    yield f"median nu {np.nanmedian(nus):.2f} % Hz^-1/2"


def _describe_file(path: Path, per_cell: bool | None) -> Iterator[str]:
    """Summary of a trace file, reading blocks of cells so memory stays bounded."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            n_trials, n_cells, n_frames = f["traces"].shape
    except (OSError, KeyError):
        n_trials, n_cells, n_frames = TraceSet.load(path).traces.shape  # raises a clear error
    step = max(1, _CHUNK_VALUES // (n_trials * n_frames))
    nu, rates, head = [], [], None
    for c0 in range(0, n_cells, step):
        ts = TraceSet.load(path, cells=slice(c0, c0 + step))
        head = head or ts
        nu.append(noise_level_nu(ts.traces, ts.frame_rate))
        if ts.has_spikes:
            rates.append(ts.mean_rate_hz())
    yield f"{path}"
    yield from _describe(head, np.concatenate(nu), per_cell,
                         np.concatenate(rates) if rates else None, (n_trials, n_cells, n_frames))


def _describe(ts: TraceSet, nu: np.ndarray, per_cell: bool | None,
              rates: np.ndarray | None = None, shape: tuple[int, int, int] | None = None
              ) -> Iterator[str]:
    n_trials, n_cells, n_frames = shape or ts.traces.shape
    if rates is None and ts.has_spikes:
        rates = ts.mean_rate_hz()
    yield f"  source      {ts.source}" + (f", indicator {ts.indicator}" if ts.indicator else "") \
        + (f", seed {ts.seed}" if ts.seed is not None else "")
    yield f"  shape       {n_trials} trials x {n_cells} cells x {n_frames} frames (float32 dF/F)"
    yield f"  frame rate  {ts.frame_rate:g} Hz; duration {n_frames / ts.frame_rate:.2f} s per trial"
    yield f"  noise nu    median {_stats(nu)} % Hz^-1/2"
    if rates is not None:
        yield f"  firing rate median {_stats(rates)} Hz (ground truth), " \
              f"population mean {np.mean(rates):.3g} Hz"
    else:
        yield "  firing rate unknown (no ground-truth spikes)"
    if ts.command:
        yield f"  made by     {ts.command} (cabench {ts.cabench_version})"
    if per_cell or (per_cell is None and n_cells <= 20):
        yield f"  {'cell':>6} {'nu':>7}" + (f" {'rate_Hz':>8}" if rates is not None else "")
        for i in range(n_cells):
            yield f"  {i:>6} {nu[i]:>7.3f}" + (f" {rates[i]:>8.3f}" if rates is not None else "")


def _stats(x: np.ndarray) -> str:
    if not np.isfinite(x).any():
        return "n/a"
    return f"{np.nanmedian(x):.3g} (range {np.nanmin(x):.3g}-{np.nanmax(x):.3g})"
