"""Training data of the spike-conditioned CalciumGAN: (spikes, dF/F) windows of ground truth.

Choices:

- Input: CASCADE ground-truth dataset folders (``DS11-GCaMP6f-m-V1``: one ``.mat`` per neuron),
  or a folder holding such folders (every sub-folder with ``.mat`` files is a dataset), or
  anything :func:`cabench.readers.read_traces` reads that has spikes (its dataset name is then
  ``params["dataset"]`` or the file's name). The dataset is the unit of validation.
- Every recording is resampled to ``frame_rate`` (Hz, default 30;
  :func:`cabench.conditions.resample`, which keeps rates within 5 %), its spikes binned into
  counts per frame (spikes per frame), its noise level nu (% Hz^-1/2) measured at that rate.
- A recording whose native rate is more than 5 % below ``frame_rate`` has no power above its
  native Nyquist frequency once resampled up, and its frame-to-frame differences shrink, so
  nu at the common rate says little about its noise. Its segments carry that bandwidth
  (``bandwidth_hz``, half the native rate; half ``frame_rate`` otherwise) and its nu measured
  at the native rate: the trainer band-limits the generated trace of such a window to the
  bandwidth (:func:`cabench.generators.conditional.band_limit_windows`) before comparing it
  with the real one. White noise of that nu at the common rate, so band-limited, is the
  recording's white noise resampled up, so the generator learns full-band traces and nu keeps
  one meaning across datasets.
- The indicator comes from the dataset folder's name (``TraceSet.indicator``) and is matched
  against the model's vocabulary, spelling-insensitively; anything else is ``"unknown"``.
- Windows of ``window`` frames are drawn only from NaN-free stretches of a recording (a NaN
  frame splits it); stretches shorter than a window are dropped.
- Validation: whole datasets, chosen by names or glob patterns (``val_datasets``). By default
  :data:`DEFAULT_VAL_DATASETS` (one OGB-1, one GCaMP6f and one GCaMP6s mouse dataset, each of
  whose indicators also has other datasets for training); default patterns that match nothing
  are ignored, explicit ones are errors.
- Traces enter the networks divided by ``trace_scale``: the 99th percentile of |dF/F| over all
  training frames, stored in the run and multiplied back on generated output.
"""

from __future__ import annotations

import fnmatch
import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cabench.errors import CabenchError
from cabench.indicators import UNKNOWN, indicator_index
from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceSet

DEFAULT_FRAME_RATE = 30.0
DEFAULT_VAL_DATASETS = ("DS02-*", "DS11-*", "DS16-*")


@dataclass
class Segment:
    """One NaN-free stretch of a recording at the common frame rate."""

    dataset: str
    trace: np.ndarray  # (frames,) float32 dF/F
    spikes: np.ndarray  # (frames,) float32 spikes per frame
    indicator: int  # index in the model's indicator vocabulary
    nu: float  # % Hz^-1/2 of the whole recording (at its native rate if that is lower)
    bandwidth_hz: float  # highest frequency the segment holds (half the lower of the rates)


@dataclass
class ConditionalData:
    """Training and validation segments and the numbers a run stores about them."""

    train: list[Segment]
    val: list[Segment]
    window: int
    frame_rate: float
    trace_scale: float
    nu_median: float
    sources: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def datasets(self, segments: list[Segment]) -> list[str]:
        return sorted({s.dataset for s in segments})

    def n_windows(self, segments: list[Segment]) -> int:
        """Window start positions (stride 1) over ``segments``."""
        return int(sum(max(len(s.trace) - self.window + 1, 0) for s in segments))

    def fingerprint(self) -> str:
        """SHA-256 of the training traces, spikes and conditions (a resume must see the same)."""
        h = hashlib.sha256()
        for s in self.train:
            h.update(s.dataset.encode())
            h.update(np.ascontiguousarray(s.trace, np.float32).tobytes())
            h.update(np.ascontiguousarray(s.spikes, np.float32).tobytes())
            h.update(np.array([s.indicator, s.nu, s.bandwidth_hz], np.float64).tobytes())
        return h.hexdigest()

    def record(self) -> dict:
        def per_dataset(segs: list[Segment]) -> dict:
            out: dict = {}
            for s in segs:
                d = out.setdefault(s.dataset, dict(segments=0, frames=0, spikes=0,
                                                   bandwidth_hz=s.bandwidth_hz))
                d["segments"] += 1
                d["frames"] += int(len(s.trace))
                d["spikes"] += int(s.spikes.sum())
            return out

        return dict(sources=self.sources, frame_rate=self.frame_rate, window=self.window,
                    trace_scale=self.trace_scale, nu_median=self.nu_median,
                    train_datasets=self.datasets(self.train),
                    val_datasets=self.datasets(self.val),
                    train_frames=int(sum(len(s.trace) for s in self.train)),
                    val_frames=int(sum(len(s.trace) for s in self.val)),
                    train_windows=self.n_windows(self.train),
                    val_windows=self.n_windows(self.val),
                    per_dataset=dict(train=per_dataset(self.train), val=per_dataset(self.val)),
                    skipped_recordings=self.skipped, fingerprint=self.fingerprint())


def expand_sources(paths: list[str | Path]) -> list[Path]:
    """Dataset folders and files: a folder without ``.mat`` files of its own stands for its
    sub-folders that have some (e.g. ``/work/shared/ground_truth``)."""
    if not paths:
        raise CabenchError("no ground-truth folders given")
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise CabenchError(f"{p}: no such file or folder")
        if p.is_dir() and not any(p.glob("*.mat")):
            subs = sorted(d for d in p.iterdir() if d.is_dir() and any(d.glob("*.mat")))
            if not subs:
                raise CabenchError(f"{p}: no .mat files in it or in its sub-folders")
            out += subs
        else:
            out.append(p)
    return out


def load_recordings(paths: list[str | Path]) -> list[tuple[str, TraceSet]]:
    """``(dataset name, TraceSet)`` of every recording under ``paths`` (see the module doc)."""
    from cabench.readers import read_traces

    out = []
    for p in expand_sources(paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unusable recordings are skipped by the reader
            sets = read_traces(p)
        for ts in sets:
            if not ts.has_spikes:
                raise CabenchError(f"{p}: has no ground-truth spikes; the conditional GAN "
                                   "trains on (spikes, trace) pairs")
            out.append((str(ts.params.get("dataset") or (p.name if p.is_dir() else p.stem)),
                        ts))
    return out


def split_datasets(names: list[str], val_datasets: list[str] | None) -> set[str]:
    """The dataset names held out for validation (see the module docstring)."""
    explicit = val_datasets is not None
    patterns = list(val_datasets) if explicit else list(DEFAULT_VAL_DATASETS)
    held: set[str] = set()
    for pat in patterns:
        hit = {n for n in names if fnmatch.fnmatchcase(n, pat)}
        if explicit and not hit:
            raise CabenchError(f"validation dataset {pat!r} matches none of the datasets: "
                               f"{', '.join(sorted(set(names)))}")
        held |= hit
    if held and held >= set(names):
        raise CabenchError("every dataset is held out for validation; leave some for training")
    return held


def _segments(name: str, ts: TraceSet, frame_rate: float, window: int,
              vocabulary: tuple[str, ...]) -> list[Segment]:
    from cabench.conditions import mean_frame_rate, native_bandwidth, resample

    r = resample(ts, frame_rate)
    counts = r.binned_spikes()
    bandwidth = native_bandwidth(ts, frame_rate)
    if bandwidth is not None:
        nu_all = noise_level_nu(ts.traces, mean_frame_rate(ts))
    else:
        nu_all, bandwidth = noise_level_nu(r.traces, r.frame_rate), r.frame_rate / 2
    ind = indicator_index(r.indicator, vocabulary)
    ind = vocabulary.index(UNKNOWN) if ind is None else ind
    out = []
    for t in range(r.n_trials):
        for c in range(r.n_cells):
            y, s, nu = r.traces[t, c], counts[t, c], float(nu_all[c])
            if not np.isfinite(nu):
                continue
            ok = np.isfinite(y)
            edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                if b - a >= window:
                    out.append(Segment(name, y[a:b].astype(np.float32),
                                       s[a:b].astype(np.float32), ind, nu, float(bandwidth)))
    return out


def prepare_conditional(recordings: list[tuple[str, TraceSet]], window: int,
                        frame_rate: float = DEFAULT_FRAME_RATE,
                        val_datasets: list[str] | None = None,
                        vocabulary: tuple[str, ...] = (UNKNOWN,),
                        sources: list[str] | None = None) -> ConditionalData:
    """Resample, bin, split by dataset and scale ``(dataset, TraceSet)`` recordings."""
    if window < 2:
        raise CabenchError(f"window must be at least 2 frames, got {window}")
    if not np.isfinite(frame_rate) or frame_rate <= 0:
        raise CabenchError(f"frame rate must be a positive number of Hz, got {frame_rate}")
    if not recordings:
        raise CabenchError("no ground-truth recordings given")
    held = split_datasets([n for n, _ in recordings], val_datasets)
    train: list[Segment] = []
    val: list[Segment] = []
    skipped: dict[str, int] = {}
    for name, ts in recordings:
        segs = _segments(name, ts, frame_rate, window, vocabulary)
        if not segs:
            skipped[name] = skipped.get(name, 0) + 1
        (val if name in held else train).extend(segs)
    if not train:
        raise CabenchError(f"no training window of {window} frames at {frame_rate:g} Hz: every "
                           "training recording is shorter or broken by NaN (use a smaller "
                           "--window)")
    allx = np.concatenate([s.trace for s in train])
    scale = float(np.percentile(np.abs(allx), 99))
    nus = np.array([s.nu for s in train])
    return ConditionalData(train=train, val=val, window=window, frame_rate=float(frame_rate),
                           trace_scale=scale if scale > 0 else 1.0,
                           nu_median=float(np.median(nus)), sources=list(sources or []),
                           skipped=skipped)


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, np.float32)


class PairSampler:
    """Random (spikes, scaled trace, indicator, nu) windows on a device. A window start is
    uniform over all start positions of all segments (stride 1); the draws come from a
    torch.Generator, so a batch is a function of the generator's state only."""

    def __init__(self, data: ConditionalData, segments: list[Segment],
                 device: torch.device) -> None:
        self.window = w = data.window
        lengths = np.array([len(s.trace) for s in segments], np.int64)
        n_starts = np.maximum(lengths - w + 1, 0)
        self.cum = torch.from_numpy(np.concatenate([[0], np.cumsum(n_starts)]))
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)])[:-1])
        self.n = int(self.cum[-1])
        self.trace = torch.from_numpy(_cat([s.trace for s in segments]) /
                                      np.float32(data.trace_scale)).float().to(device)
        self.spikes = torch.from_numpy(_cat([s.spikes for s in segments])).to(device)
        self.indicator = torch.tensor([s.indicator for s in segments], dtype=torch.long)
        self.nu = torch.tensor([s.nu for s in segments], dtype=torch.float32)
        # highest frequency bin of a window that a segment's bandwidth keeps
        self.keep = torch.tensor([int(np.floor(w * s.bandwidth_hz / data.frame_rate + 1e-9))
                                  for s in segments], dtype=torch.long)
        self.device = device
        self.arange = torch.arange(w, device=device)

    def positions(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
        """``size`` (segment index, first frame in the concatenated arrays) pairs."""
        k = torch.randint(0, self.n, (size,), generator=generator)
        seg = torch.searchsorted(self.cum, k, right=True) - 1
        return seg, self.offsets[seg] + (k - self.cum[seg])

    def batch(self, size: int, generator: torch.Generator, unknown_prob: float = 0.0,
              unknown_index: int = 0) -> dict[str, torch.Tensor]:
        """A batch: ``spikes``, ``trace`` ``(size, window)`` and ``indicator``, ``nu``,
        ``keep`` (highest frequency bin the window holds) ``(size,)``; with probability
        ``unknown_prob`` a window's indicator becomes ``unknown_index`` (so the model also
        learns the unknown-indicator case)."""
        seg, first = self.positions(size, generator)
        drop = torch.rand(size, generator=generator) < unknown_prob
        ind = torch.where(drop, torch.full_like(seg, unknown_index), self.indicator[seg])
        idx = first.to(self.device)[:, None] + self.arange
        return dict(spikes=self.spikes[idx], trace=self.trace[idx],
                    indicator=ind.to(self.device), nu=self.nu[seg].to(self.device),
                    keep=self.keep[seg].to(self.device))
