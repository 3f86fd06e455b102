"""Training data of a CalciumGAN: windows of ``window`` frames x all cells, scaled to [0, 1].

Choices (documented in ``train-gan --help`` too):

- Every trial of every file is one recording segment; all must have the same number of cells
  and (within 1 %) the same frame rate.
- Validation is the last ``val_fraction`` of the frames of every segment (at least one window),
  a contiguous block never overlapped by a training window; a segment shorter than two windows
  gives no validation frames.
- Scaling is one global min/max over all training frames (the paper's choice; it keeps the
  relative amplitude of cells), or per cell with ``scaling="per_cell"``. The bounds are stored
  in the run's config and inverted on generated output.
- NaN in a training file is refused (CabenchError naming the file and the count): CalciumGAN
  has no mask for missing frames, and filling them in would teach it invented values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cabench.errors import CabenchError
from cabench.traceset import TraceSet

SCALINGS = ("global", "per_cell")


@dataclass
class GanData:
    """Training (and validation) segments ``(cells, frames)`` in raw dF/F, and the scaling."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    window: int
    frame_rate: float
    cell_names: list[str] | None
    lo: np.ndarray  # (cells,) scaling bounds (equal across cells for global scaling)
    hi: np.ndarray
    stride: int = 2
    files: list[str] = field(default_factory=list)

    @property
    def n_cells(self) -> int:
        return self.train[0].shape[0]

    def starts(self, segments: list[np.ndarray]) -> np.ndarray:
        """``(n, 2)`` (segment, start frame) of every window at ``stride``."""
        rows = [np.stack([np.full(len(r), i), r], 1)
                for i, s in enumerate(segments)
                for r in [np.arange(0, s.shape[1] - self.window + 1, self.stride)]]
        rows = [r for r in rows if len(r)]
        return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)

    def scale(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.lo[:, None]) / (self.hi - self.lo)[:, None]).astype(np.float32)

    def fingerprint(self) -> str:
        """SHA-256 of the training frames, to check that a resumed run sees the same data."""
        h = hashlib.sha256()
        for s in self.train:
            h.update(np.ascontiguousarray(s, np.float32).tobytes())
        return h.hexdigest()

    def record(self) -> dict:
        return dict(files=self.files, n_cells=self.n_cells, frame_rate=self.frame_rate,
                    cell_names=self.cell_names, scaling_lo=self.lo.tolist(),
                    scaling_hi=self.hi.tolist(), window_stride=self.stride,
                    train_frames=int(sum(s.shape[1] for s in self.train)),
                    val_frames=int(sum(s.shape[1] for s in self.val)),
                    train_windows=int(len(self.starts(self.train))),
                    val_windows=int(len(self.starts(self.val))),
                    fingerprint=self.fingerprint())


def load_sets(paths: list[str | Path]) -> list[tuple[str, TraceSet]]:
    """Read every path with :func:`cabench.readers.read_traces` (one or more TraceSets each)."""
    from cabench.readers import read_traces

    if not paths:
        raise CabenchError("no training data given")
    return [(str(p), ts) for p in paths for ts in read_traces(p)]


def prepare(sets: list[tuple[str, TraceSet]], window: int, val_fraction: float = 0.1,
            scaling: str = "global", stride: int = 2) -> GanData:
    """Split, check and scale ``(name, TraceSet)`` pairs into :class:`GanData`."""
    if scaling not in SCALINGS:
        raise CabenchError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    if not 0 <= val_fraction < 1:
        raise CabenchError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not sets:
        raise CabenchError("no training data given")
    name0, ts0 = sets[0]
    train, val = [], []
    for name, ts in sets:
        n_nan = int(np.isnan(ts.traces).sum())
        if n_nan:
            raise CabenchError(f"{name}: {n_nan} NaN value(s) in the traces; CalciumGAN cannot "
                               "train on missing frames (cut or fill them first)")
        if ts.n_cells != ts0.n_cells:
            raise CabenchError(f"{name}: {ts.n_cells} cells, but {name0} has {ts0.n_cells}; "
                               "all training files must record the same cells")
        if abs(ts.frame_rate / ts0.frame_rate - 1) > 0.01:
            raise CabenchError(f"{name}: frame rate {ts.frame_rate:g} Hz differs from "
                               f"{ts0.frame_rate:g} Hz of {name0}")
        for trial in ts.traces:
            n = trial.shape[1]
            n_val = max(window, int(round(val_fraction * n))) if val_fraction > 0 else 0
            if n - n_val < window:  # too short to hold out a block: train on all of it
                n_val = 0
            if n < window:
                continue
            train.append(trial[:, : n - n_val])
            if n_val:
                val.append(trial[:, n - n_val :])
    if not train:
        longest = max(ts.n_frames for _, ts in sets)
        raise CabenchError(f"too few frames for one window: the longest recording has "
                           f"{longest} frames, the window is {window} (use a smaller --window)")
    allx = np.concatenate(train, axis=1)
    if scaling == "global":
        lo = np.full(allx.shape[0], allx.min(), np.float64)
        hi = np.full(allx.shape[0], allx.max(), np.float64)
    else:
        lo, hi = allx.min(axis=1).astype(np.float64), allx.max(axis=1).astype(np.float64)
    hi = np.where(hi > lo, hi, lo + 1.0)  # a constant cell maps to 0
    return GanData(train=train, val=val, window=window, frame_rate=ts0.frame_rate,
                   cell_names=ts0.cell_names, lo=lo, hi=hi, stride=stride,
                   files=[name for name, _ in sets])


class WindowSampler:
    """Random batches of scaled windows on a device; indices come from a torch.Generator."""

    def __init__(self, data: GanData, segments: list[np.ndarray], device: torch.device) -> None:
        self.window = data.window
        self.segs = [torch.from_numpy(data.scale(s)).to(device) for s in segments]
        self.starts = torch.from_numpy(data.starts(segments))
        self.n = len(self.starts)

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, self.n, (size,), generator=generator)
        return torch.stack([self.segs[int(s)][:, int(t) : int(t) + self.window]
                            for s, t in self.starts[idx].tolist()])
