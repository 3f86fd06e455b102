"""GAN datasets of a benchmark suite: traces generated on the fly from a trained run, cached.

A suite dataset names a GAN run folder with ``gan = "runs/NAME"`` (relative paths resolve like
``path``). Two kinds of run (``cabench.generators.conditional_train.run_kind``):

- **unconditional** (CalciumGAN): ``samples`` windows (default :data:`DEFAULT_SAMPLES`) are
  drawn with ``seed`` (default from the dataset name). There is no ground truth, so each method
  gets one case per dataset that infers spikes on the generated windows and on the real data
  the GAN was trained on (the run's training files, or ``reference = "PATH"``), cut into
  windows of the GAN's length, and compares the distributions of firing rate (Hz), pairwise
  Pearson r (0.5 s bins) and pairwise van Rossum distance (tau 1 s) with
  :mod:`cabench.generators.evaluate`: KL(real || GAN) of 30-bin histograms (nats) and the
  Wasserstein distance (in the statistic's unit). These are :data:`STAT_METRICS` (lower is
  better); they say how alike a method's view of GAN and real data is, **not** how accurate the
  method is against ground truth. ``resample``, ``noise``, ``spikes`` and ``simulate`` are
  refused.
- **conditional**: traces are generated for given spikes, ``spikes = "PATH"`` (a trace file
  with spikes) or ``simulate = {...}``, which become the ground truth; such datasets are scored
  like any other (source ``gan``). ``samples`` and ``reference`` are refused.

``seed`` (default: CRC-32 of the dataset name) seeds generation and, for conditional datasets,
also the ``noise`` condition. Generated traces are cached in
``<suite output>/gan/<dataset>/NNN.h5`` (one file per recording), keyed by :func:`cache_key`
(run kind, SHA-256 of the run's ``config.json``, the checkpoint's step, samples, seed and the
input spikes); the key is stored in each file's params and in the cases' ``params.json``. A
re-run reuses matching files (``force`` regenerates them); anything else regenerates them, each
file written atomically, and re-runs the dataset's cases.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cabench.errors import CabenchError

#: windows generated from an unconditional run when ``samples`` is not given
DEFAULT_SAMPLES = 100
#: the statistics compared, as (name in the score metrics, key of evaluate.window_statistics)
STATISTICS = (("rate", "firing_rate"), ("correlation", "correlation"),
              ("van_rossum", "van_rossum"))
#: the ranking metric of unconditional GAN datasets (lower is better), see :func:`_stat_rows`
STAT_RANK_METRIC = "wasserstein_norm"
#: score metrics of unconditional GAN datasets, in leaderboard column order (all: lower is
#: better; GAN vs real statistics of inferred spikes, not accuracy)
STAT_METRICS = (STAT_RANK_METRIC,) + tuple(
    f"{name}_{kind}" for name, _ in STATISTICS for kind in ("kl", "wasserstein"))
STAT_NOTE = (
    "These columns compare statistics of the spikes each method infers on GAN-generated traces "
    "with those it infers on the real data the GAN was trained on (KL divergence, nats, and "
    "Wasserstein distance of the distributions of firing rate, pairwise correlation and "
    "pairwise van Rossum distance; `wasserstein_norm` is the mean of the three Wasserstein "
    "distances, each divided by the SD of the real data's values, and is empty, ranked last, when "
    "a statistic is undefined, e.g. for a method that infers no spikes). Lower means more alike. "
    "They are NOT accuracy against ground truth: unconditional GAN data have none."
)
_GAN_ONLY = ("samples", "spikes", "reference")


# --- validation ---------------------------------------------------------------------------------
def run_kind(run_dir: str | Path) -> str:
    """``"conditional"`` or ``"unconditional"``; CabenchError for a folder that is no run."""
    from cabench.generators.conditional_train import run_kind as kind

    return kind(run_dir)


def validate(d: Any, where: str) -> None:
    """Check a dataset that names a GAN run (or a GAN-only key) and record its run kind."""
    if d.gan is None:
        given = [k for k in _GAN_ONLY if getattr(d, k) is not None]
        raise CabenchError(f"{where}: {', '.join(given)} only go with 'gan = \"RUN FOLDER\"'")
    if d.path is not None:
        raise CabenchError(f"{where}: give exactly one of 'path', 'simulate' and 'gan' "
                           "(a conditional GAN takes its input spikes from 'simulate' or "
                           "'spikes')")
    if not isinstance(d.gan, str) or not Path(d.gan).is_dir():
        raise CabenchError(f"{where}: gan run folder {d.gan} does not exist")
    if d.source not in (None, "gan"):
        raise CabenchError(f"{where}: a GAN dataset has source 'gan', not {d.source!r}")
    if d.samples is not None and (isinstance(d.samples, bool) or not isinstance(d.samples, int)
                                  or d.samples < 1):
        raise CabenchError(f"{where}: samples must be a positive integer (windows), got "
                           f"{d.samples!r}")
    try:
        kind = run_kind(d.gan)
    except CabenchError as e:
        raise CabenchError(f"{where}: {e}") from None
    if kind == "unconditional":
        bad = [k for k in ("spikes", "simulate", "resample", "noise", "frame_rate")
               if getattr(d, k) is not None] + (["options"] if d.options else [])
        if bad:
            raise CabenchError(
                f"{where}: {d.gan} is an unconditional GAN run: it takes no "
                f"{', '.join(repr(k) for k in bad)} (it generates traces without input spikes "
                "and is compared with its training data at their own condition)")
        reference_paths(d, where)
    else:
        if (d.spikes is None) == (d.simulate is None):
            raise CabenchError(f"{where}: {d.gan} is a conditional GAN run: give its input "
                               "spikes with exactly one of 'spikes = \"PATH\"' and "
                               "'simulate = {...}'")
        for key in ("samples", "reference"):
            if getattr(d, key) is not None:
                raise CabenchError(f"{where}: '{key}' is for unconditional GAN runs; a "
                                   "conditional run generates one trace per input spike train")
        if d.spikes is not None and not Path(d.spikes).exists():
            raise CabenchError(f"{where}: spikes file {d.spikes} does not exist")
    d.gan_kind = kind


def reference_paths(d: Any, where: str = "") -> list[Path]:
    """The real data an unconditional dataset is compared with: ``reference``, else the run's
    training files (relative ones tried against the working folder, the run folder and its
    parent). A missing file is an error naming it."""
    prefix = f"{where}: " if where else ""
    if d.reference is not None:
        p = Path(d.reference)
        if not p.exists():
            raise CabenchError(f"{prefix}reference file {p} does not exist")
        return [p]
    cfg = _read_run_config(Path(d.gan))
    files = (cfg.get("data") or {}).get("files") or []
    if not files:
        raise CabenchError(f"{prefix}{d.gan} records no training files; give 'reference = "
                           "\"PATH\"' (the real data to compare with)")
    out = []
    run = Path(d.gan)
    for f in files:
        p = Path(f).expanduser()
        tried = [p] if p.is_absolute() else [Path.cwd() / p, run / p, run.parent / p]
        hit = next((t for t in tried if t.exists()), None)
        if hit is None:
            raise CabenchError(f"{prefix}training file {f} of {d.gan} not found (tried: "
                               f"{', '.join(str(t) for t in tried)}); give 'reference = "
                               "\"PATH\"' (the real data to compare with)")
        out.append(hit)
    return out


def _read_run_config(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CabenchError(f"{run}: unreadable config.json ({e})") from None


# --- generation and cache -----------------------------------------------------------------------
def _seed(d: Any) -> int:
    return int(d.seed) if d.seed is not None else zlib.crc32(d.name.encode())


def _checkpoint_identity(run: Path) -> dict[str, Any]:
    """The checkpoint's step (``checkpoint.pt``); its size and mtime when it has no step."""
    path = run / "checkpoint.pt"
    if not path.is_file():
        return {}
    try:
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return {"step": int(ckpt["step"])}
    except Exception:  # another layout: fall back on the file itself
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_key(d: Any) -> str:
    """What determines a GAN dataset's traces, hashed (16 hex digits): run kind, SHA-256 of the
    run's config.json, checkpoint step, samples, seed and the input spikes (simulation
    parameters, or the spike file's path, size and mtime)."""
    run = Path(d.gan)
    cfg = run / "config.json"
    spikes = None
    if d.spikes is not None:
        st = Path(d.spikes).stat()
        spikes = [str(Path(d.spikes).resolve()), st.st_size, st.st_mtime_ns]
    what = dict(kind=d.gan_kind, run=str(run.resolve()),
                config=hashlib.sha256(cfg.read_bytes()).hexdigest() if cfg.is_file() else None,
                checkpoint=_checkpoint_identity(run), seed=_seed(d),
                samples=_samples(d), simulate=d.simulate, spikes=spikes,
                frame_rate=d.frame_rate, options=d.options)
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _samples(d: Any) -> int | None:
    if d.gan_kind != "unconditional":
        return None
    return int(d.samples) if d.samples is not None else DEFAULT_SAMPLES


def generate(d: Any, key: str = "") -> list[Any]:
    """Generate a GAN dataset's recordings (TraceSets, source ``gan``) in memory."""
    seed = _seed(d)
    if d.gan_kind == "unconditional":
        from cabench.generators.gan_train import load_generator, sample
        from cabench.traceset import TraceSet

        G, cfg, step = load_generator(d.gan)
        n = _samples(d)
        data = cfg["data"]
        traces = sample(G, cfg, n, seed)
        return [TraceSet(traces, frame_rate=data["frame_rate"],
                         cell_names=data.get("cell_names"), source="gan", seed=seed,
                         params=dict(run_dir=str(Path(d.gan).resolve()), step=step, seed=seed,
                                     samples=n, training_files=data.get("files"),
                                     cache_key=key))]
    from cabench.generators.conditional_train import generate_traces

    if d.simulate is not None:
        from cabench.simulators.pipeline import Simulation

        inputs = [Simulation(dict(d.simulate)).run(keep_calcium=False)]
    else:
        from cabench.readers import read_traces

        inputs = read_traces(d.spikes, frame_rate=d.frame_rate, **d.options)
    out = []
    for i, spikes in enumerate(inputs):
        if not spikes.has_spikes:
            raise CabenchError(f"{d.spikes or 'simulation'}: recording {i} has no spikes to "
                               "generate traces for")
        ts = generate_traces(d.gan, spikes, seed=seed + i)
        if not ts.has_spikes or ts.n_cells != spikes.n_cells:
            raise CabenchError(f"{d.gan}: the conditional GAN returned traces without the "
                               f"{spikes.n_cells} cells' spikes it was given")
        ts.source = "gan"
        ts.params = {**(ts.params or {}), "cache_key": key}
        out.append(ts)
    return out


def _cached(folder: Path, key: str) -> list[Path] | None:
    """The cached files of ``folder`` when all of them carry ``key`` and their number is the
    one recorded in them (None otherwise)."""
    import h5py

    files = sorted(folder.glob("*.h5"))
    if not files:
        return None
    try:
        for f in files:
            with h5py.File(f, "r") as h:
                p = json.loads(h.attrs.get("params", "{}"))
                if p.get("cache_key") != key or p.get("cache_files") != len(files):
                    return None
    except (OSError, ValueError):
        return None
    return files


def materialise(suite: Any, out_dir: str | Path, force: bool = False) -> None:
    """Generate (or reuse from ``out_dir/gan/``) the traces of every GAN dataset of ``suite``
    and record the files and cache key on the dataset (``gan_cache``). A dataset whose
    generation fails keeps ``gan_cache`` None: loading it then fails with the reason, which its
    cases record."""
    for d in suite.datasets:
        if d.gan is None:
            continue
        d.gan_cache = None
        try:
            key = cache_key(d)
            folder = Path(out_dir) / "gan" / d.name
            files = None if force else _cached(folder, key)
            if files is None:
                sets = generate(d, key)
                folder.mkdir(parents=True, exist_ok=True)
                for old in folder.glob("*.h5"):
                    old.unlink()
                files = []
                for i, ts in enumerate(sets):
                    ts.params = {**ts.params, "cache_key": key, "cache_files": len(sets)}
                    files.append(ts.save(folder / f"{i:03d}.h5", overwrite=True))
            d.gan_cache = dict(key=key, files=[str(f) for f in files])
        except Exception:  # recorded by the dataset's cases when they load it
            continue


def load_sets(d: Any) -> list[Any]:
    """A GAN dataset's recordings: from its cache files, else generated in memory."""
    from cabench.traceset import TraceSet

    if d.gan_kind is None:
        validate(d, f"dataset {d.name!r}")
    if d.gan_cache:
        return [TraceSet.load(f) for f in d.gan_cache["files"]]
    return generate(d, "")


# --- statistics cases (unconditional) -----------------------------------------------------------
def is_statistics_case(case: Any) -> bool:
    return getattr(case.dataset, "gan_kind", None) == "unconditional"


def _reference_windows(d: Any, window: int, n_cells: int, frame_rate: float
                       ) -> tuple[np.ndarray, str]:
    """The real data cut into non-overlapping windows ``(n, cells, window)`` (windows with
    non-finite values dropped) and the indicator of the real data."""
    from cabench.generators.evaluate import cut_windows
    from cabench.readers import read_traces

    parts = []
    indicator = ""
    for p in reference_paths(d):
        for ts in read_traces(p):
            if ts.n_cells != n_cells:
                raise CabenchError(f"{p}: {ts.n_cells} cells, but the GAN generates {n_cells}")
            if abs(ts.frame_rate / frame_rate - 1) > 0.01:
                raise CabenchError(f"{p}: {ts.frame_rate:g} Hz, but the GAN generates "
                                   f"{frame_rate:g} Hz")
            indicator = indicator or ts.indicator
            if ts.n_frames >= window:
                parts.append(cut_windows(ts.traces, window)[0])
    w = np.concatenate(parts) if parts else np.zeros((0, n_cells, window), np.float32)
    w = w[np.isfinite(w).all(axis=(1, 2))]
    if not len(w):
        raise CabenchError(f"the real data ({', '.join(map(str, reference_paths(d)))}) hold no "
                           f"complete finite window of {window} frames")
    return w, indicator


def compare_statistics(real: dict[str, np.ndarray], gan: dict[str, np.ndarray]
                       ) -> dict[str, float]:
    """:data:`STAT_METRICS` of pooled window statistics (``evaluate.window_statistics``).

    ``<statistic>_kl`` is KL(real || GAN) of 30-bin histograms (nats), ``_wasserstein`` the
    Wasserstein distance (Hz for the rate, unitless for r and the van Rossum distance).

    ``wasserstein_norm`` (the rank) is the mean over the three statistics of the Wasserstein
    distance divided by the SD of the real data's values: unitless, so no statistic dominates
    by its unit, and read as "shift in units of the real spread". Wasserstein rather than KL
    because KL of histograms depends on the binning range (set by outliers) and saturates near
    log(1 / 1e-6) once a bin is empty, which makes it noisy with few windows. NaN (ranked last)
    when a statistic is undefined, e.g. a method that infers no spikes, or when the real values
    have no spread.
    """
    from cabench.benchmark.metrics import compare_values
    from cabench.generators.evaluate import KL_BINS

    out: dict[str, float] = {}
    norm = []
    for name, key in STATISTICS:
        v = compare_values(real[key], gan[key], KL_BINS)
        out[f"{name}_kl"] = float(v["kl"])
        out[f"{name}_wasserstein"] = float(v["wasserstein"])
        r = np.asarray(real[key], np.float64)
        r = r[np.isfinite(r)]
        sd = float(r.std()) if r.size > 1 else float("nan")
        norm.append(v["wasserstein"] / sd if sd > 0 else float("nan"))
    out[STAT_RANK_METRIC] = float(np.mean(norm))
    return {k: out[k] for k in STAT_METRICS}


def run_statistics_case(case: Any, ts: Any | None) -> dict[str, Any]:
    """Run one unconditional-GAN case in its folder (never raises): infer spikes on the GAN
    windows and on the real windows, compare their statistics; write ``params.json``,
    ``scores.csv`` (rows with recording ``all``, cell ``all``, metrics :data:`STAT_METRICS`),
    ``statistics.npz`` (the pooled values) and ``log.json``; return the log."""
    from cabench.benchmark import suite as S
    from cabench.benchmark.methods import get_method
    from cabench.benchmark.methods.base import global_numpy_seed
    from cabench.generators.evaluate import _inferred_trains, window_statistics
    from cabench.noise_level import noise_level_nu

    folder = case.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    log: dict[str, Any] = dict(case=case.label, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    params = dict(case.spec(), versions=S._versions(case.method.name))
    base = dict(dataset=case.dataset.name, source="gan", recording=case.recording, cell="all",
                method=case.method.label)
    try:
        if ts is None:
            ts = case.dataset.load()[1][case.index]
        fr, window = ts.frame_rate, ts.n_frames
        gan_w = ts.traces
        real_w, indicator = _reference_windows(case.dataset, window, ts.n_cells, fr)
        # indicator-aware methods get the real data's indicator, the same for both inputs
        ts.indicator = ts.indicator or indicator
        seconds = 0.0
        with global_numpy_seed(case.seed):
            method = get_method(case.method.name, **S._method_params(case.method, ts))
            trains = {}
            for k, w in (("gan", gan_w), ("real", real_w)):
                t1 = time.perf_counter()
                trains[k] = _inferred_trains(method, w, fr)
                seconds += time.perf_counter() - t1
        stats = {k: window_statistics(v, window / fr) for k, v in trains.items()}
        scores = compare_statistics(stats["real"], stats["gan"])
        nu = float(np.nanmedian(noise_level_nu(gan_w, fr)))
        rows = [dict(base, noise_level=nu, metric=k, value=v, seconds=seconds, status="ok")
                for k, v in scores.items()]
        params.update(window_frames=int(window), gan_windows=int(len(gan_w)),
                      real_windows=int(len(real_w)),
                      reference=[str(p) for p in reference_paths(case.dataset)])
        S._write_json(folder / "params.json", params)
        S._atomic(folder / "statistics.npz", lambda f: np.savez(
            f, **{f"{k}_{s}": v for k, st in stats.items() for s, v in st.items()}), "wb")
        S._write_csv(folder / "scores.csv", pd.DataFrame(rows, columns=list(S.CASE_COLUMNS)))
        log.update(status="ok", seconds=time.perf_counter() - t0, inference_seconds=seconds,
                   warnings=[], error=None)
    except Exception as e:  # a failed case is recorded, never raised
        (folder / "statistics.npz").unlink(missing_ok=True)
        S._write_json(folder / "params.json", params)
        rows = [dict(base, noise_level=float("nan"), metric=m, value=float("nan"),
                     seconds=float("nan"), status="failed") for m in STAT_METRICS]
        S._write_csv(folder / "scores.csv", pd.DataFrame(rows, columns=list(S.CASE_COLUMNS)))
        log.update(status="failed", seconds=time.perf_counter() - t0, warnings=[],
                   error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    log["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    S._write_json(folder / "log.json", log)
    return log


# --- leaderboards -------------------------------------------------------------------------------
def statistics_datasets(scores: pd.DataFrame) -> set[str]:
    """Datasets scored by GAN-vs-real statistics: every metric of theirs is a STAT_METRIC."""
    if scores.empty:
        return set()
    is_stat = scores["metric"].isin(STAT_METRICS)
    by = is_stat.groupby(scores["dataset"].astype(str), sort=False).all()
    return set(by.index[by.to_numpy(bool)])


def split_scores(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ordinary scores, GAN-statistics scores); the first is ``scores`` itself without the
    latter."""
    names = statistics_datasets(scores)
    if not names:
        return scores, scores.iloc[:0]
    mask = scores["dataset"].astype(str).isin(names).to_numpy()
    return scores[~mask], scores[mask]


def statistics_leaderboard(stats: pd.DataFrame) -> pd.DataFrame:
    """Dataset x method for GAN-statistics datasets: :data:`STAT_METRICS` (lower is better),
    rank by ``wasserstein_norm`` (1 = best), ``n_failed``, ``noise_level`` (median nu of the
    generated traces, % Hz^-1/2); ``n_cells`` is empty (one comparison per method, not cells)."""
    from cabench.benchmark.suite import _leaderboard

    board = _leaderboard(stats, STAT_RANK_METRIC, ascending=True)
    board["n_cells"] = pd.array([pd.NA] * len(board), dtype="Int64")
    metrics = [m for m in STAT_METRICS if m in board]
    rest = [c for c in board.columns if c not in metrics]
    return board[rest + metrics]


def statistics_summary(board: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Methods across GAN-statistics datasets per source and condition: n_datasets, mean rank,
    wins and the median of each :data:`STAT_METRICS`; best (lowest ``wasserstein_norm``)
    first."""
    from cabench.benchmark.suite import _summary

    return _summary(board, scores, STAT_METRICS, STAT_RANK_METRIC, ascending=True,
                    scored="n_failed")


def statistics_markdown(board: pd.DataFrame, scores: pd.DataFrame) -> str:
    """The markdown section of GAN-statistics datasets (summary, per dataset, a plain note)."""
    from cabench.benchmark.suite import markdown_table

    names = statistics_datasets(scores)
    b = board[board["dataset"].isin(names)]
    s = scores[scores["dataset"].astype(str).isin(names)]
    cols = [c for c in b.columns if c not in ("n_cells",)
            and (c in STAT_METRICS or c in ("dataset", "method", "rank", "n_failed",
                                            "noise_level"))]
    return ("\n## Unconditional GAN datasets: inferred spikes, GAN vs real (lower is better)\n\n"
            + STAT_NOTE + "\n\n### Across datasets (median of dataset values)\n\n"
            + markdown_table(statistics_summary(b, s))
            + "\n### Per dataset\n\n" + markdown_table(b[cols].reset_index(drop=True)))
