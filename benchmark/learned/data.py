"""Training samples for the ``cnn`` method, from TraceSets with ground-truth spikes.

Per recording (a TraceSet; its dataset is ``params["dataset"]``, as set by
:func:`cabench.readers.read_cascade_folder`, else the recording is a dataset of its own):

1. resample to the model's frame rate (:func:`cabench.conditions.resample`, FFT, CASCADE's 5 %
   rule), bridge NaN frames linearly (they are never a target); with ``recipe.time_scales``
   beyond 1, each training (not validation) recording also gets copies played faster or
   slower (:func:`time_scaled`), which go through the same steps;
2. targets: ground-truth spikes binned on the resampled frame grid
   (:meth:`TraceSet.binned_spikes`) and smoothed with a Gaussian of SD ``smoothing_s`` seconds
   (mass beyond the ends is lost): expected spikes per frame;
3. for each target noise level: noisy copies (replicas) by
   :func:`cabench.conditions.match_noise` (shot-noise-like, each with its own seed); cells
   already noisier than the level are left out at that level;
4. each noisy trace is stored once, padded with its edge values by ``before`` frames in front and
   ``after`` behind (what prediction does at the ends too; plus up to ``segment - 1`` more
   behind so its length is a whole number of segments), all concatenated into one float32
   array. The unit of sampling is a *segment*: ``recipe.segment`` consecutive target frames of
   one trace. Training evaluates all windows of a segment in one sliding pass, which shares
   the convolutions of neighbouring windows (``segment = 1``: one window per sample, as
   published). Windows are cut only when a batch is built (:class:`SegmentBatches`), never
   all at once.

Balance: every (dataset, level) pair gets the same share of ``max_samples`` target frames,
drawn as randomly chosen whole segments (the last one trimmed to the share); a dataset gets as
many replicas (up to ``max_replicas``) as it needs to fill its share, and if it still falls
short its frames weigh more, so each dataset carries the same total weight in the loss. A frame
that is not a target (padding, a NaN frame, beyond the share) has weight 0.
Everything random comes from ``numpy.random.default_rng`` / ``SeedSequence`` seeded by the
caller; the same seed gives the same samples.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from cabench.benchmark.learned.inputs import model_inputs
from cabench.benchmark.learned.recipe import Recipe
from cabench.conditions import NU_TOLERANCE, match_noise, resample
from cabench.errors import CabenchError
from cabench.indicators import UNKNOWN, indicator_family
from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceSet


@dataclass
class Recording:
    """One recording at the model's frame rate: NaN-bridged traces, smoothed targets, mask."""

    name: str
    dataset: str
    ts: TraceSet  # resampled; traces with NaN frames bridged
    target: np.ndarray  # float32 (trials, cells, frames), expected spikes per frame
    valid: np.ndarray  # bool (trials, cells, frames): frames that were finite
    nu: np.ndarray  # noise level per cell before any noise is added (NaN: unusable)
    family: str = UNKNOWN  # indicator family (cabench.indicators.indicator_family)


@dataclass
class Samples:
    """Training samples: padded traces, targets and per-frame weights concatenated, and the
    segments that are sampled."""

    x: np.ndarray  # float32 (total,), noisy dF/F, padded per trace; (channels, total) for
    #                recipe.inputs other than dff (cabench.benchmark.learned.inputs)
    y: np.ndarray  # float32 (total,), targets aligned with x (0 in the padding)
    w: np.ndarray  # float32 (total,), loss weight of each frame (0: not a target); mean 1 over
    #                targets, equal total weight per dataset and level
    start: np.ndarray  # int64 (n,), position in x of the first target frame of each segment
    nu: np.ndarray  # float32 (n,), the noise level of each segment's trace
    family: np.ndarray  # int64 (n,), each segment's index into recipe.families (0: unknown)
    counts: dict[str, int] = field(default_factory=dict)  # target frames per dataset

    @property
    def n(self) -> int:
        """Number of segments."""
        return int(self.start.size)

    @property
    def frames(self) -> int:
        """Number of target frames (samples, in the published recipe's sense)."""
        return int(np.count_nonzero(self.w))


def dataset_of(ts: TraceSet, index: int) -> str:
    """The dataset a TraceSet belongs to: ``params["dataset"]``, else its own ``set<index>``."""
    return str(ts.params.get("dataset") or f"set{index}")


def recording_name(ts: TraceSet, index: int) -> str:
    if ts.cell_names and ts.n_cells == 1:
        return f"{dataset_of(ts, index)}/{ts.cell_names[0]}"
    return f"{dataset_of(ts, index)}/rec{index}"


def prepare(tracesets: list[TraceSet], recipe: Recipe) -> list[Recording]:
    """Resample, bridge NaN and build smoothed targets for each TraceSet (with spikes)."""
    out = []
    for i, ts in enumerate(tracesets):
        if not ts.has_spikes:
            raise CabenchError("training needs ground-truth spikes: a TraceSet has none")
        out.append(_recording(ts, recording_name(ts, i), dataset_of(ts, i), recipe,
                              indicator_family(ts.indicator)))
    return out


def _recording(ts: TraceSet, name: str, dataset: str, recipe: Recipe,
               family: str = UNKNOWN) -> Recording:
    r = resample(ts, recipe.frame_rate)
    traces = r.traces.astype(np.float32)
    valid = np.isfinite(traces)
    if not valid.all():
        traces = traces.copy()
        pos = np.arange(r.n_frames)
        for t in range(r.n_trials):
            for c in range(r.n_cells):
                ok = valid[t, c]
                if ok.any() and not ok.all():
                    traces[t, c] = np.interp(pos, pos[ok], traces[t, c, ok])
                elif not ok.any():
                    traces[t, c] = 0.0
    target = r.binned_spikes()
    sigma = recipe.smoothing_s * r.frame_rate
    if sigma > 0:
        target = gaussian_filter1d(target, sigma, axis=-1, mode="constant").astype(np.float32)
    nu = noise_level_nu(np.where(valid, traces, np.nan), r.frame_rate)
    nu[~valid.any(axis=(0, 2))] = np.nan
    return Recording(name=name, dataset=dataset,
                     ts=dataclasses.replace(r, traces=traces, calcium=None), target=target,
                     valid=valid, nu=nu, family=family)


def time_scaled(recordings: list[Recording], recipe: Recipe) -> list[Recording]:
    """``recordings`` plus a copy of each at every time scale of ``recipe.time_scales`` other
    than 1 (augmentation for indicators faster or slower than the training data).

    At scale ``s`` the recording is played ``s`` times faster: its frame rate is declared ``s``
    times higher and every spike time divided by ``s``, then it is resampled to the model rate
    again, so indicator rise and decay times and inter-spike intervals shrink by ``s`` while
    amplitudes per spike stay. The copy keeps its dataset (the dataset's share of the samples
    does not grow) and is named ``<name>@x<s>``; its indicator family is unknown (its kinetics
    are no longer the indicator's). NaN frames stay NaN.
    """
    out = list(recordings)
    for s in recipe.time_scales:
        if s == 1:
            continue
        for rec in recordings:
            ts = rec.ts
            fast = dataclasses.replace(
                ts, traces=np.where(rec.valid, ts.traces, np.nan),
                frame_rate=ts.frame_rate * s, spike_times=ts.spike_times / s,
                frame_times=None if ts.frame_times is None else ts.frame_times / s,
            )
            out.append(_recording(fast, f"{rec.name}@x{s:g}", rec.dataset, recipe))
    return out


def eligible(recordings: list[Recording], level: float) -> bool:
    """Whether any cell is at most as noisy as ``level`` (so it can be trained at it)."""
    return any(np.any(r.nu <= level * (1 + NU_TOLERANCE)) for r in recordings)


def build_samples(
    recordings: list[Recording],
    recipe: Recipe,
    levels: tuple[float, ...],
    max_samples: int,
    seed: int | list[int],
    replicas: bool = True,
) -> Samples:
    """Samples of ``recordings`` at the noise ``levels``: at most ``max_samples`` target frames
    in segments of ``recipe.segment`` frames (see the module docstring).

    ``seed``: an int or a sequence of ints (the entropy of every generator used). ``replicas``
    False: one noisy copy per recording and level (validation). Each segment's family is
    its recording's index in ``recipe.families`` (0, unknown, if it is not there).
    """
    before, after, seg = recipe.before, recipe.after, recipe.segment
    entropy = [int(v) for v in np.atleast_1d(seed)]
    # the choice of segments draws from a stream apart from every replica's noise stream
    choose_rng = np.random.default_rng(np.random.SeedSequence([*entropy, 2**31]))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    nus: list[np.ndarray] = []
    fams: list[np.ndarray] = []
    weighted: list[tuple[np.ndarray, float]] = []  # (positions, weight) of chosen targets
    counts: dict[str, int] = {}
    offset = 0
    per_level = max_samples / len(levels)
    for li, level in enumerate(levels):
        ok = [r.nu <= level * (1 + NU_TOLERANCE) for r in recordings]  # cells per recording
        frames: dict[str, int] = {}
        for r, cells in zip(recordings, ok, strict=True):
            n = int(r.valid[:, cells].sum())
            if n:
                frames[r.dataset] = frames.get(r.dataset, 0) + n
        if not frames:
            continue
        quota = per_level / len(frames)
        pools: dict[str, list[np.ndarray]] = {d: [] for d in frames}  # segment starts
        pool_fams: dict[str, list[np.ndarray]] = {d: [] for d in frames}
        base, valid = offset, []  # the frames of this level's traces that may be targets
        for ri, r in enumerate(recordings):
            if r.dataset not in frames or not ok[ri].any():
                continue
            n_rep = 1
            if replicas:
                n_rep = int(min(max(math.ceil(quota / frames[r.dataset]), 1),
                                recipe.max_replicas))
            tail = after + (-r.ts.n_frames) % seg
            fam = recipe.families.index(r.family) if r.family in recipe.families else 0
            for k in range(n_rep):
                seq = np.random.SeedSequence([*entropy, li, ri, k])
                noisy, report = match_noise(r.ts, level, seed=seq)
                if noisy is None:
                    break
                kept = np.setdiff1d(np.arange(r.ts.n_cells), report["dropped"])
                inputs = model_inputs(noisy.traces, recipe.inputs)  # (trials, cells[, C], frames)
                for t in range(noisy.n_trials):
                    for j, c in enumerate(kept):
                        x = inputs[t, j]
                        width = [(0, 0)] * (x.ndim - 1) + [(before, tail)]
                        xs.append(np.pad(x, width, mode="edge"))
                        ys.append(np.pad(r.target[t, c], (before, tail)))
                        valid.append(np.pad(r.valid[t, c], (before, tail)))
                        n = x.shape[-1]
                        pools[r.dataset].append(offset + before + np.arange(0, n, seg))
                        pool_fams[r.dataset].append(np.full(pools[r.dataset][-1].size, fam))
                        offset += n + before + tail
        is_valid = np.concatenate(valid) if valid else np.zeros(0, bool)
        for d, parts in pools.items():
            pool = np.concatenate(parts) if parts else np.zeros(0, np.int64)  # ascending
            order = choose_rng.permutation(pool)  # segments in a random order
            targets = is_valid[order[:, None] - base + np.arange(seg)]  # (segments, seg)
            per_segment = np.cumsum(targets.sum(axis=1))
            if per_segment.size == 0 or per_segment[-1] == 0:
                continue
            take = max(1, min(int(quota), int(per_segment[-1])))  # never above max_samples
            used = int(np.searchsorted(per_segment, take)) + 1  # segments holding the take
            pos = (order[:used, None] + np.arange(seg))[targets[:used]][:take]
            weighted.append((pos, quota / take))
            starts.append(np.sort(order[:used]))
            nus.append(np.full(used, level, np.float32))
            fams.append(np.concatenate(pool_fams[d])[np.searchsorted(pool, starts[-1])])
            counts[d] = counts.get(d, 0) + take
    if not starts:
        return Samples(*(np.zeros(0, np.float32) for _ in range(3)), np.zeros(0, np.int64),
                       np.zeros(0, np.float32), np.zeros(0, np.int64), {})
    x = np.concatenate(xs, axis=-1).astype(np.float32)
    w = np.zeros(x.shape[-1], np.float32)
    for pos, weight in weighted:
        w[pos] = weight
    w /= w[w > 0].mean()
    return Samples(x=x, y=np.concatenate(ys).astype(np.float32), w=w,
                   start=np.concatenate(starts).astype(np.int64), nu=np.concatenate(nus),
                   family=np.concatenate(fams), counts=counts)


def split_recordings(recordings: list[Recording], fraction: float, rng: np.random.Generator
                     ) -> tuple[list[int], list[int]]:
    """Indices of training and held-out (validation) recordings.

    From each dataset with at least two recordings, ``fraction`` of them (stochastically
    rounded, never all) are held out; if that holds out none although possible, one recording
    of the largest dataset is. Datasets with one recording are always trained on.
    """
    by_dataset: dict[str, list[int]] = {}
    for i, r in enumerate(recordings):
        by_dataset.setdefault(r.dataset, []).append(i)
    held: list[int] = []
    if fraction > 0:
        for members in by_dataset.values():
            if len(members) < 2:
                continue
            k = min(int(fraction * len(members) + rng.random()), len(members) - 1)
            held += [members[j] for j in sorted(rng.choice(len(members), k, replace=False))]
        largest = max(by_dataset.values(), key=len)
        if not held and len(largest) >= 2:
            held = [largest[int(rng.integers(len(largest)))]]
    held_set = set(held)
    return [i for i in range(len(recordings)) if i not in held_set], sorted(held)


# --- ground-truth folders ---------------------------------------------------------------------
def select_datasets(root: str | Path, include: list[str] | None = None,
                    exclude: list[str] | None = None) -> list[Path]:
    """Dataset folders (sub-folders with .mat files) of a ground-truth folder, filtered by names
    or glob patterns; CabenchError if the folder is missing or nothing matches."""
    root = Path(root)
    if not root.is_dir():
        raise CabenchError(f"ground-truth folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.mat")))
    if not folders:
        raise CabenchError(f"{root}: no dataset folders (sub-folders with .mat files)")
    names = [p.name for p in folders]

    def matches(name: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    picked = [p for p in folders
              if (not include or matches(p.name, include))
              and not (exclude and matches(p.name, exclude))]
    if not picked:
        what = []
        if include:
            what.append(f"--datasets {','.join(include)}")
        if exclude:
            what.append(f"--exclude {','.join(exclude)}")
        raise CabenchError(f"no datasets of {root} match {' and '.join(what)}; available: "
                           f"{', '.join(names)}")
    return picked


def read_ground_truth(folders: list[Path]) -> list[TraceSet]:
    """Every recording of the dataset folders (CASCADE format), with ``params["dataset"]``."""
    from cabench.readers import read_cascade_folder

    out = []
    for folder in folders:
        for ts in read_cascade_folder(folder):
            ts.params["dataset"] = folder.name
            out.append(ts)
    return out
