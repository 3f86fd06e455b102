"""Validity study: does the method ranking on synthetic traces predict the ranking on real data?

For every CASCADE ground-truth dataset, three *sources* of the same spikes on the same frames:

* ``real``: the recordings (optionally FFT-resampled to one frame rate, e.g. 30 Hz);
* ``simulated``: the simulator's model of the dataset's indicator preset driven by the real
  spikes, noise level nu matched per cell (:func:`cabench.simulators.from_spikes
  .traces_from_spikes`); datasets whose indicator has no preset get no simulated twin;
* ``gan``: a conditional CalciumGAN driven by the real spikes
  (``cabench.generators.conditional_train.generate_traces``), when a GAN run is given.

A recording resampled up from a native rate more than 5 % below the common rate has no power
above its native Nyquist frequency. Its twins are made with the nu of the recording at its
native rate and then band-limited to that frequency (:func:`cabench.conditions.band_limit`),
so that they have its bandwidth and its noise, not white noise across the whole band.

Each source is written as one trace file per recording under ``OUT/sources/<source>/<dataset>/``
(with a ``manifest.json``; reused while its parameters are unchanged) and one benchmark suite
scores every method on all of them (``OUT/suite/``, cached per case).

Analysis (pure functions of the tidy scores): per (source, dataset) the methods are ranked by
the median over cells of ``corr_25hz`` (higher is better) and of ``van_rossum`` (the normalised
van Rossum distance, lower is better). The agreement of a synthetic source with the real data
is Spearman's rho between the two rankings (``scipy.stats.spearmanr``; >= 3 methods):

* per dataset, with a percentile bootstrap over cells (neurons: a neuron's recordings are
  resampled together; the same resample for every source and method, so sources are paired);
* overall, two statistics over the datasets that have every source: ``overall-pooled`` ranks
  the methods by the median across datasets of the per-dataset medians; ``overall-mean`` is the
  mean of the per-dataset rhos; both with a bootstrap over datasets.

With both synthetic sources, ``gan-minus-simulated`` rows give the paired difference of rho.
Outputs: ``rankings.csv``, ``spearman.csv`` (tidy), ``summary.md`` (the finding in one
sentence per metric, computed from the numbers), ``spearman.png``; ``sources.csv`` and
``skipped.csv`` list the recordings used and left out.
"""

from __future__ import annotations

import json
import re
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cabench.errors import CabenchError

SOURCE_ORDER = ("real", "simulated", "gan")
SYNTHETIC = ("simulated", "gan")
DIFFERENCE = "gan-minus-simulated"
#: ranking metrics of the study -> True when higher is better
RANK_METRICS: dict[str, bool] = {"corr_25hz": True, "van_rossum": False}
N_BOOT = 2000
CONFIDENCE = 0.95
MIN_METHODS = 3
ALL = "(all)"
INDEX_COLUMNS = ("source", "dataset", "recording", "unit", "noise_level", "suite_name", "path")
Progress = Callable[[str, int, int], None]


# --- building the sources -----------------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "rec"


def _fingerprint(paths: list[Path]) -> list[list[Any]]:
    """Name, size and modification time of files (to notice changed inputs)."""
    out = []
    for p in sorted(paths):
        st = p.stat()
        out.append([p.name, st.st_size, st.st_mtime_ns])
    return out


def _recording_seed(seed: int, dataset: str, index: int) -> int:
    ss = np.random.SeedSequence([seed, zlib.crc32(dataset.encode()), index])
    return int(ss.generate_state(1)[0])


def _manifest_ok(folder: Path, params: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The cached recordings of a (source, dataset) folder if its parameters match."""
    try:
        man = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if man.get("params") != json.loads(json.dumps(params)):
        return None
    files = man.get("recordings", [])
    if not all((folder / f["file"]).is_file() for f in files):
        return None
    return files


def _write_manifest(folder: Path, params: dict[str, Any], recs: list[dict[str, Any]],
                    skipped: list[dict[str, Any]]) -> None:
    from cabench.benchmark.suite import _write_text

    text = json.dumps(dict(params=params, recordings=recs, skipped=skipped), indent=2,
                      sort_keys=True)
    _write_text(folder / "manifest.json", text + "\n")


def build_sources(
    folders: list[Path],
    cache_dir: str | Path,
    frame_rate: float | None = 30.0,
    gan_run: str | Path | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the real, simulated and (with ``gan_run``) GAN trace files of each dataset folder.

    ``frame_rate`` (Hz; None keeps each recording's own) is the common rate the real traces are
    resampled to. The simulated twin of a recording has the real spikes, frames and noise level
    nu (% Hz^-1/2) of each cell, seed from ``seed`` and the recording. A recording without
    spikes or without a finite nu is left out of every source. A twin whose signal alone
    changes more per frame than the real nu allows ends up noisier (a warning; the index's
    ``noise_level`` column, nu of each file, shows it). Returns the index (columns
    :data:`INDEX_COLUMNS`; ``unit`` is the neuron, i.e. the .mat file) and the skipped
    recordings (dataset, recording, source, reason).
    """
    from cabench.simulators.presets import preset_for_indicator

    cache = Path(cache_dir)
    gan_params = None
    if gan_run is not None:
        run = Path(gan_run)
        if not run.exists():
            raise CabenchError(f"GAN run {run} does not exist")
        files = [p for p in run.rglob("*") if p.is_file()]
        gan_params = dict(run=str(run.resolve()), files=_fingerprint(files))
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for n, folder in enumerate(folders):
        name = folder.name
        base = dict(dataset=str(Path(folder).resolve()), frame_rate_hz=frame_rate,
                    files=_fingerprint(list(folder.glob("*.mat"))))
        indicator = _folder_indicator(folder)
        preset = preset_for_indicator(indicator)
        wanted = {"real": base}
        if preset is not None:
            wanted["simulated"] = dict(base, preset=preset, seed=seed, bandwidth="native")
        else:
            skipped.append(dict(dataset=name, recording=ALL, source="simulated",
                                reason=f"indicator {indicator or '(none)'!r} has no preset"))
        if gan_params is not None:
            wanted["gan"] = dict(base, gan=gan_params, seed=seed, indicator=indicator,
                                 bandwidth="native")
        cached = {s: _manifest_ok(cache / s / name, p) for s, p in wanted.items()}
        need = {s for s, v in cached.items() if v is None}
        if need:
            made, skip = _build_dataset(folder, cache, need, frame_rate, preset, gan_run, seed)
            for s, recs in made.items():
                _write_manifest(cache / s / name, wanted[s], recs, skip)
                cached[s] = recs
        skip = json.loads((cache / "real" / name / "manifest.json").read_text())["skipped"]
        skipped += [dict(dataset=name, source="all", **s) for s in skip]
        for source, recs in cached.items():
            for r in recs:
                rows.append(dict(source=source, dataset=name, recording=r["recording"],
                                 unit=r["unit"], noise_level=r.get("noise_level"),
                                 suite_name=f"{source}.{name}.{r['recording']}",
                                 path=str(cache / source / name / r["file"])))
        if progress is not None:
            progress("sources", n + 1, len(folders))
    index = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    skipped_df = pd.DataFrame(skipped, columns=["dataset", "recording", "source", "reason"])
    return index, skipped_df


def _folder_indicator(folder: Path) -> str:
    from cabench.readers import _cascade_indicator

    return _cascade_indicator(folder.name)


def _build_dataset(folder: Path, cache: Path, wanted: set[str], frame_rate: float | None,
                   preset: str | None, gan_run: Any, seed: int
                   ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Write the ``wanted`` sources of one dataset; the recordings written and those skipped
    (the same for every source: decided on the real recording)."""
    from dataclasses import replace

    from cabench.conditions import band_limit, mean_frame_rate, native_bandwidth, resample
    from cabench.noise_level import noise_level_nu
    from cabench.readers import read_cascade_folder
    from cabench.simulators.from_spikes import traces_from_spikes

    generate = None
    if "gan" in wanted:
        from cabench.generators.conditional_train import generate_traces as generate
    made: dict[str, list[dict[str, Any]]] = {s: [] for s in wanted}
    skipped: list[dict[str, Any]] = []
    used: set[str] = set()
    for i, ts in enumerate(read_cascade_folder(folder)):
        raw = ts.cell_names[0] if ts.cell_names else f"rec{i:03d}"
        rec = _safe(raw)
        rec = rec if rec not in used else f"{rec}-{i}"
        used.add(rec)
        unit = raw.split("#")[0]
        real = resample(ts, frame_rate) if frame_rate else ts
        real.source = "real"
        nu = noise_level_nu(real.traces, real.frame_rate)
        reason = None
        if real.spike_times.size == 0:
            reason = "no spikes"
        elif not np.isfinite(nu).all():
            reason = "no noise level (too few finite frames)"
        if reason is not None:
            skipped.append(dict(recording=rec, reason=reason))
            continue
        rseed = _recording_seed(seed, folder.name, i)
        band = native_bandwidth(ts, real.frame_rate)
        nu_twin = nu if band is None else noise_level_nu(ts.traces, mean_frame_rate(ts))
        out = {"real": real}
        if "simulated" in wanted:
            sim = traces_from_spikes(real, preset=preset, noise_level=nu_twin, seed=rseed)
            if band is not None:
                sim = replace(sim, traces=band_limit(sim.traces, sim.frame_rate, band))
            out["simulated"] = sim
        if generate is not None:
            # the GAN picks the indicator from real.indicator (its vocabulary, else "unknown")
            g = generate(gan_run, real, seed=rseed, noise_level=float(np.median(nu_twin)),
                         bandwidth_hz=band)
            out["gan"] = _as_gan(g, real)
        for source, s_ts in out.items():
            if source not in wanted:
                continue  # cached already
            file = f"{rec}.h5"
            (cache / source / folder.name).mkdir(parents=True, exist_ok=True)
            s_ts.save(cache / source / folder.name / file, overwrite=True)
            nu_file = float(np.nanmean(noise_level_nu(s_ts.traces, s_ts.frame_rate)))
            made[source].append(dict(recording=rec, unit=unit, file=file, noise_level=nu_file))
    return made, skipped


def _as_gan(g: Any, real: Any) -> Any:
    """The GAN's output checked against the real recording, with its spikes and frames."""
    from dataclasses import replace

    if getattr(g, "traces", None) is None or g.traces.shape != real.traces.shape:
        shape = getattr(getattr(g, "traces", None), "shape", None)
        raise CabenchError(f"the GAN returned traces of shape {shape} for a recording of shape "
                           f"{real.traces.shape}")
    return replace(g, source="gan", spike_times=real.spike_times.copy(),
                   spike_offsets=real.spike_offsets.copy(), frame_rate=real.frame_rate,
                   frame_times=None if real.frame_times is None else real.frame_times.copy(),
                   cell_names=real.cell_names)


def study_suite(index: pd.DataFrame, methods: list[str]) -> Any:
    """One suite over every trace file of the index (one dataset per recording and source)."""
    from cabench.benchmark.suite import DatasetSpec, MethodSpec, Suite

    specs = [DatasetSpec(name=r.suite_name, path=r.path, source=r.source)
             for r in index.itertuples(index=False)]
    if not specs:
        raise CabenchError("no recordings to score (every dataset was skipped)")
    return Suite(specs, [MethodSpec(m) for m in methods], name="validity",
                 description="real vs simulated vs GAN twins of the ground truth")


# --- the run ------------------------------------------------------------------------------------
def run_study(
    ground_truth: str | Path,
    out_dir: str | Path,
    datasets: list[str] | None = None,
    frame_rate: float | None = 30.0,
    gan_run: str | Path | None = None,
    methods: list[str] | None = None,
    jobs: int = 1,
    seed: int = 0,
    n_boot: int = N_BOOT,
    progress: Progress | None = None,
    figure: bool = True,
) -> pd.DataFrame:
    """Build the sources, score every method on them and write the analysis; returns the
    Spearman table. ``methods`` default to every ready method (installed, model present)."""
    from cabench.benchmark.learned.data import select_datasets
    from cabench.benchmark.methods import method_class, ready
    from cabench.benchmark.suite import _write_csv, run_suite

    if frame_rate is not None and (not np.isfinite(frame_rate) or frame_rate <= 0):
        raise CabenchError(f"frame rate must be a positive number of Hz, got {frame_rate}")
    names = ready() if methods is None else list(methods)
    for m in names:
        method_class(m)
    if len(names) < MIN_METHODS:
        raise CabenchError(f"a ranking needs at least {MIN_METHODS} methods, got {len(names)}")
    folders = select_datasets(ground_truth, datasets)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index, skipped = build_sources(folders, out / "sources", frame_rate, gan_run, seed, progress)
    _write_csv(out / "sources.csv", index)
    _write_csv(out / "skipped.csv", skipped)

    def case_progress(done: int, total: int, label: str, status: str) -> None:
        if progress is not None:
            progress("scoring", done, total)

    scores = run_suite(study_suite(index, names), out / "suite", jobs=jobs,
                       progress=case_progress, figures=False)
    info = dict(frame_rate_hz=frame_rate, seed=seed, n_boot=n_boot, methods=names,
                gan_run=None if gan_run is None else str(gan_run),
                datasets=[f.name for f in folders])
    return write_analysis(out, scores, index, skipped, info, n_boot=n_boot, seed=seed,
                          figure=figure)


def write_analysis(out: Path, scores: pd.DataFrame, index: pd.DataFrame,
                   skipped: pd.DataFrame, info: dict[str, Any], n_boot: int = N_BOOT,
                   seed: int = 0, figure: bool = True) -> pd.DataFrame:
    """rankings.csv, spearman.csv, summary.md and spearman.png from the suite's scores."""
    from cabench.benchmark.suite import _write_csv, _write_text

    info = {**info, **_noise_check(index)}
    frame = tidy_scores(scores, index)
    ranks = rankings(frame)
    spear = spearman_table(frame, n_boot=n_boot, seed=seed)
    _write_csv(out / "rankings.csv", ranks)
    _write_csv(out / "spearman.csv", spear)
    _write_text(out / "summary.md", summary_markdown(spear, ranks, info, skipped))
    if figure:
        plot_spearman(spear, out / "spearman.png")
    return spear


def _noise_check(index: pd.DataFrame) -> dict[str, str]:
    """Per synthetic source: how many twins are noisier than their real recording (> 5 %)."""
    real = index[index["source"] == "real"].set_index(["dataset", "recording"])["noise_level"]
    out = {}
    for source in SYNTHETIC:
        twin = index[index["source"] == source].set_index(["dataset", "recording"])
        if twin.empty:
            continue
        ratio = twin["noise_level"] / real.reindex(twin.index)
        n = int((ratio > 1.05).sum())
        out[f"{source} twins noisier than their real recording (nu > 1.05 x real)"] = \
            f"{n} of {len(twin)}"
    return out


# --- analysis (pure) ----------------------------------------------------------------------------
def tidy_scores(scores: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Scored cells of the study: source, dataset, recording, unit, method, metric, value
    (rows with status ok and a ranking metric; the suite's dataset names mapped back)."""
    cols = ["source", "dataset", "recording", "unit", "method", "metric", "value"]
    s = scores[(scores["status"] == "ok") & scores["metric"].isin(list(RANK_METRICS))]
    key = index.set_index("suite_name")[["source", "dataset", "recording", "unit"]]
    s = s.drop(columns=["source", "recording"]).rename(columns={"dataset": "suite_name"})
    s = s.merge(key, left_on="suite_name", right_index=True, how="inner")
    return s[cols].reset_index(drop=True)


def dataset_medians(frame: pd.DataFrame) -> pd.DataFrame:
    """Median over cells per (metric, source, dataset, method), with the number of cells."""
    g = frame.dropna(subset=["value"]).groupby(["metric", "source", "dataset", "method"],
                                               sort=True)["value"]
    return pd.DataFrame({"median": g.median(), "n_cells": g.size()}).reset_index()


def _common_datasets(med: pd.DataFrame, metric: str) -> list[str]:
    """Datasets that have a score in every source present for ``metric``."""
    m = med[med["metric"] == metric]
    sources = set(m["source"])
    have = m.groupby("dataset")["source"].agg(lambda s: set(s) >= sources)
    return sorted(have.index[have])


def rankings(frame: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method (1 = best; ties share the best rank) per metric, source and dataset
    by the median over cells, and across datasets (dataset ``(all)``: by the median of the
    dataset medians over the datasets that have every source)."""
    med = dataset_medians(frame)
    parts = [med]
    for metric in med["metric"].unique():
        common = _common_datasets(med, metric)
        m = med[(med["metric"] == metric) & med["dataset"].isin(common)]
        g = m.groupby(["metric", "source", "method"])
        parts.append(pd.DataFrame({"median": g["median"].median(),
                                   "n_cells": g["n_cells"].sum()}).reset_index()
                     .assign(dataset=ALL))
    out = pd.concat(parts, ignore_index=True)
    higher = out["metric"].map(RANK_METRICS).fillna(True).astype(bool)
    key = out["median"].where(higher, -out["median"])
    out["rank"] = key.groupby([out["metric"], out["source"], out["dataset"]]).rank(
        ascending=False, method="min").astype("Int64")
    order = {s: i for i, s in enumerate(SOURCE_ORDER)}
    out["_s"] = out["source"].map(order)
    out["_all"] = out["dataset"] == ALL
    out = out.sort_values(["metric", "_all", "dataset", "_s", "rank", "method"])
    return out[["metric", "dataset", "source", "method", "median", "rank", "n_cells"]
               ].reset_index(drop=True)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two method scores over the methods finite in both (NaN if fewer than
    :data:`MIN_METHODS` or a ranking is constant)."""
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < MIN_METHODS or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`spearman` of each row pair of ``(n, methods)`` arrays, vectorised where no NaN."""
    from scipy.stats import rankdata

    out = np.full(a.shape[0], np.nan)
    clean = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if a.shape[1] >= MIN_METHODS and clean.any():
        ra = rankdata(a[clean], axis=1)
        rb = rankdata(b[clean], axis=1)
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        den = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[clean] = np.where(den > 0, (ra * rb).sum(axis=1) / den, np.nan)
    for i in np.flatnonzero(~clean):
        out[i] = spearman(a[i], b[i])
    return out


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=axis)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _ci(boot: np.ndarray, confidence: float) -> tuple[float, float, int]:
    ok = boot[np.isfinite(boot)]
    if ok.size == 0:
        return float("nan"), float("nan"), 0
    lo, hi = np.percentile(ok, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi), int(ok.size)


def spearman_table(frame: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0,
                   confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Spearman's rho between each synthetic source's method ranking and the real one.

    ``frame``: tidy scores (columns source, dataset, unit, method, metric, value; one row per
    scored recording; ``unit`` is what the bootstrap resamples, e.g. the neuron). Rows: scope
    ``dataset`` (per dataset; bootstrap over units), ``overall-pooled`` (ranking by the median
    across datasets of the dataset medians) and ``overall-mean`` (mean of the per-dataset
    rhos), both over the datasets that have every source (bootstrap over datasets); source
    ``simulated``, ``gan`` or ``gan-minus-simulated`` (paired difference). Percentile
    intervals of ``n_boot`` resamples (``numpy.random.default_rng`` seeded by ``seed`` and
    the dataset's name); ``n_boot_valid`` counts the resamples where rho was defined.
    """
    if n_boot < 1:
        raise CabenchError(f"n_boot must be at least 1, got {n_boot}")
    needed = {"source", "dataset", "unit", "method", "metric", "value"}
    if needed - set(frame.columns):
        missing = ", ".join(sorted(needed - set(frame.columns)))
        raise CabenchError(f"scores frame lacks column(s) {missing}")
    f = frame[frame["metric"].isin(list(RANK_METRICS)) & frame["value"].notna()]
    sources = [s for s in SOURCE_ORDER if s in set(f["source"])]
    synth = [s for s in SYNTHETIC if s in sources]
    rows: list[dict[str, Any]] = []
    if "real" not in sources or not synth:
        return pd.DataFrame(rows, columns=_SPEARMAN_COLUMNS)
    metrics = [m for m in RANK_METRICS if m in set(f["metric"])]
    methods = sorted(set(f["method"]))
    per_dataset: dict[str, dict[str, Any]] = {}
    for dataset, fd in f.groupby("dataset", sort=True):
        per_dataset[dataset] = _dataset_boot(fd, metrics, sources, methods, n_boot, seed)
    for metric_i, metric in enumerate(metrics):
        for dataset, r in per_dataset.items():
            present = {s for i, s in enumerate(sources)
                       if np.isfinite(r["point_med"][metric_i, i]).any()}
            if "real" not in present:
                continue
            for s in synth + ([DIFFERENCE] if len(synth) == 2 else []):
                if not ({s} if s != DIFFERENCE else set(SYNTHETIC)) <= present:
                    continue  # this dataset lacks the source
                point, boot = _pick(r["point"], r["boot"], metric_i, sources, s)
                lo, hi, nv = _ci(boot, confidence)
                rows.append(dict(metric=metric, scope="dataset", dataset=dataset, source=s,
                                 rho=point, ci_low=lo, ci_high=hi,
                                 n_methods=r["n_methods"][metric_i], n_resampled=r["n_units"],
                                 n_boot_valid=nv))
        rows += _overall_rows(per_dataset, metric_i, metric, sources, synth, n_boot, seed,
                              confidence)
    return pd.DataFrame(rows, columns=_SPEARMAN_COLUMNS)


_SPEARMAN_COLUMNS = ["metric", "scope", "dataset", "source", "rho", "ci_low", "ci_high",
                     "n_methods", "n_resampled", "n_boot_valid"]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def _dataset_boot(fd: pd.DataFrame, metrics: list[str], sources: list[str],
                  methods: list[str], n_boot: int, seed: int) -> dict[str, Any]:
    """Medians over cells (metric, source, method), the rho of each synthetic source against
    real, and the same for ``n_boot`` resamples of units (shared by all sources)."""
    piv = fd.pivot_table(index=["unit", "recording"] if "recording" in fd else ["unit"],
                         columns=["metric", "source", "method"], values="value",
                         aggfunc="first")
    full = pd.MultiIndex.from_product([metrics, sources, methods])
    v = piv.reindex(columns=full).to_numpy(dtype=np.float64)
    v = v.reshape(len(piv), len(metrics), len(sources), len(methods))
    units = piv.index.get_level_values(0).to_numpy()
    uniq, codes = np.unique(units, return_inverse=True)
    unit_rows = [np.flatnonzero(codes == u) for u in range(uniq.size)]
    point_med = _nanmedian(v, axis=0)  # (K, S, M)
    rng = _rng(seed, str(fd["dataset"].iloc[0]))
    boot_med = np.empty((n_boot, *point_med.shape))
    for b in range(n_boot):
        pick = rng.integers(uniq.size, size=uniq.size)
        rows = np.concatenate([unit_rows[i] for i in pick])
        boot_med[b] = _nanmedian(v[rows], axis=0)
    point = np.full((len(metrics), len(sources)), np.nan)
    boot = np.full((n_boot, len(metrics), len(sources)), np.nan)
    n_methods = []
    for k in range(len(metrics)):
        real = point_med[k, 0]
        n_methods.append(int(max((np.isfinite(real) & np.isfinite(point_med[k, s])).sum()
                                 for s in range(1, len(sources)))))
        for s in range(1, len(sources)):
            point[k, s] = spearman(real, point_med[k, s])
            boot[:, k, s] = _spearman_rows(boot_med[:, k, 0], boot_med[:, k, s])
    return dict(point=point, boot=boot, point_med=point_med, n_units=int(uniq.size),
                n_methods=n_methods)


def _pick(point: np.ndarray, boot: np.ndarray, k: int, sources: list[str], s: str
          ) -> tuple[float, np.ndarray]:
    if s == DIFFERENCE:
        g, m = sources.index("gan"), sources.index("simulated")
        return float(point[k, g] - point[k, m]), boot[:, k, g] - boot[:, k, m]
    i = sources.index(s)
    return float(point[k, i]), boot[:, k, i]


def _overall_rows(per_dataset: dict[str, dict[str, Any]], k: int, metric: str,
                  sources: list[str], synth: list[str], n_boot: int, seed: int,
                  confidence: float) -> list[dict[str, Any]]:
    """overall-pooled and overall-mean rows over the datasets that have every source."""
    names = [d for d, r in per_dataset.items()
             if all(np.isfinite(r["point_med"][k, i]).any() for i in range(len(sources)))]
    if not names:
        return []
    med = np.stack([per_dataset[d]["point_med"][k] for d in names])  # (D, S, M)
    rho = np.stack([per_dataset[d]["point"][k] for d in names])  # (D, S)

    def stats(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pooled = _nanmedian(med[idx], axis=0)  # (S, M)
        p = np.array([np.nan] + [spearman(pooled[0], pooled[s]) for s in range(1, len(sources))])
        return p, _nanmean(rho[idx], axis=0)

    pooled_pt, mean_pt = stats(np.arange(len(names)))
    rng = _rng(seed, f"overall-{metric}")
    pooled_b = np.full((n_boot, len(sources)), np.nan)
    mean_b = np.full((n_boot, len(sources)), np.nan)
    for b in range(n_boot):
        pooled_b[b], mean_b[b] = stats(rng.integers(len(names), size=len(names)))
    rows = []
    for scope, pt, bt in (("overall-pooled", pooled_pt, pooled_b),
                          ("overall-mean", mean_pt, mean_b)):
        n_methods = int(np.isfinite(med[:, 0]).any(axis=0).sum())
        for s in synth + ([DIFFERENCE] if len(synth) == 2 else []):
            point, boot = _pick(pt[None], bt[:, None], 0, sources, s)
            lo, hi, nv = _ci(boot, confidence)
            rows.append(dict(metric=metric, scope=scope, dataset=ALL, source=s, rho=point,
                             ci_low=lo, ci_high=hi, n_methods=n_methods,
                             n_resampled=len(names), n_boot_valid=nv))
    return rows


# --- report -------------------------------------------------------------------------------------
def _fmt(rho: float, lo: float, hi: float) -> str:
    if not np.isfinite(rho):
        return "n/a"
    ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""
    return f"{rho:.2f}{ci}"


_LABEL = {"simulated": "simulated", "gan": "GAN"}


def finding(spear: pd.DataFrame, metric: str = "corr_25hz") -> str:
    """One sentence on ``metric``'s overall-pooled agreement, computed from the numbers."""
    t = spear[(spear["metric"] == metric) & (spear["scope"] == "overall-pooled")]
    t = t.set_index("source")
    have = [s for s in SYNTHETIC if s in t.index and np.isfinite(t.loc[s, "rho"])]
    what = f"Ranked by {metric}"
    if not have:
        return f"{what}, no agreement could be computed (fewer than {MIN_METHODS} methods " \
               "scored on the datasets that have every source)."
    n = int(t.loc[have[0], "n_resampled"])
    if len(have) == 2:
        g, s = t.loc["gan"], t.loc["simulated"]
        better, worse = ("gan", "simulated") if g["rho"] > s["rho"] else ("simulated", "gan")
        d = t.loc[DIFFERENCE] if DIFFERENCE in t.index else None
        clear = d is not None and np.isfinite(d["ci_low"]) and (d["ci_low"] > 0
                                                                 or d["ci_high"] < 0)
        if g["rho"] == s["rho"] or not clear:
            verdict = ("GAN and simulated rankings agree with the real ranking about equally "
                       "well")
        else:
            verdict = (f"{_LABEL[better]} rankings agree with the real ranking better than "
                       f"{_LABEL[worse]} ones")
        b, w = t.loc[better], t.loc[worse]
        text = (f"{what}, {verdict}: rho {_fmt(b['rho'], b['ci_low'], b['ci_high'])} "
                f"({_LABEL[better]}) vs {_fmt(w['rho'], w['ci_low'], w['ci_high'])} "
                f"({_LABEL[worse]}) over {n} datasets")
        if d is not None:
            text += (f" (GAN minus simulated {_fmt(d['rho'], d['ci_low'], d['ci_high'])}"
                     f"{'' if clear else ', an interval that includes 0'})")
        return text + "."
    s = have[0]
    r = t.loc[s]
    if np.isfinite(r["ci_low"]) and r["ci_low"] > 0:
        verdict = "agree with the real ranking"
    elif np.isfinite(r["ci_high"]) and r["ci_high"] < 0:
        verdict = "are the reverse of the real ranking"
    else:
        verdict = "show no clear agreement with the real ranking (the interval includes 0)"
    return (f"{what}, {_LABEL[s]} rankings {verdict}: rho "
            f"{_fmt(r['rho'], r['ci_low'], r['ci_high'])} over {n} datasets.")


def summary_markdown(spear: pd.DataFrame, ranks: pd.DataFrame, info: dict[str, Any],
                     skipped: pd.DataFrame) -> str:
    """The study's summary: finding, overall and per-dataset rho, overall rankings, setup."""
    from cabench.benchmark.suite import markdown_table

    lines = ["# Validity of synthetic benchmarks", "", "## Finding", ""]
    lines += [f"- {finding(spear, m)}" for m in RANK_METRICS]
    lines += ["", "rho: Spearman correlation between the method ranking on a synthetic source "
              "and on the real recordings of the same spikes; 1 = same order, -1 = reversed. "
              f"Brackets: {100 * CONFIDENCE:.0f} % percentile bootstrap intervals "
              f"({info.get('n_boot', N_BOOT)} resamples). `overall-pooled` ranks methods by the "
              "median across datasets of the per-dataset medians (resampling datasets); "
              "`overall-mean` is the mean of the per-dataset rhos (resampling datasets); "
              "`dataset` rows resample neurons. corr_25hz: higher is better; van_rossum "
              "(normalised van Rossum distance): lower is better.", ""]
    if not spear.empty:
        t = spear.copy()
        t["rho [CI]"] = [_fmt(r, lo, hi) for r, lo, hi in zip(t["rho"], t["ci_low"],
                                                               t["ci_high"], strict=True)]
        cols = ["metric", "scope", "source", "rho [CI]", "n_methods", "n_resampled"]
        lines += ["## Overall", "", markdown_table(t[t["scope"] != "dataset"][cols])]
        cols = ["metric", "dataset", "source", "rho [CI]", "n_methods", "n_resampled"]
        lines += ["## Per dataset", "", markdown_table(t[t["scope"] == "dataset"][cols])]
    r = ranks[ranks["dataset"] == ALL]
    if not r.empty:
        piv = r.pivot_table(index=["metric", "method"], columns="source", values="rank",
                            aggfunc="first").reset_index()
        piv.columns.name = None
        lines += ["## Ranks across datasets (1 = best)", "", markdown_table(piv)]
    lines += ["## Setup", ""]
    lines += [f"- {k}: {v if not isinstance(v, list) else ', '.join(map(str, v))}"
              for k, v in info.items()]
    if not skipped.empty:
        lines += ["", "## Left out", "", markdown_table(skipped)]
    return "\n".join(lines) + "\n"


def plot_spearman(spear: pd.DataFrame, path: str | Path) -> Path:
    """rho per dataset (and overall) per synthetic source with its interval, one panel per
    metric; written as PNG."""
    from matplotlib.figure import Figure

    metrics = [m for m in RANK_METRICS if m in set(spear["metric"])] or list(RANK_METRICS)
    t = spear[spear["source"].isin(SYNTHETIC)]
    labels = sorted(set(t.loc[t["scope"] == "dataset", "dataset"]))
    labels += ["overall-pooled", "overall-mean"]
    fig = Figure(figsize=(max(6.0, 0.35 * len(labels) + 2), 3.2 * len(metrics)))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    colours = {"simulated": "tab:blue", "gan": "tab:orange"}
    for ax, metric in zip(axes, metrics, strict=True):
        m = t[t["metric"] == metric]
        for j, s in enumerate(SYNTHETIC):
            ms = m[m["source"] == s]
            if ms.empty:
                continue
            key = np.where(ms["scope"] == "dataset", ms["dataset"], ms["scope"])
            x = np.array([labels.index(k) for k in key]) + (j - 0.5) * 0.3
            rho = ms["rho"].to_numpy(float)
            err = np.abs(np.vstack([rho - ms["ci_low"].to_numpy(float),
                                    ms["ci_high"].to_numpy(float) - rho]))
            ax.errorbar(x, rho, yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2,
                        color=colours[s], label=_LABEL[s])
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(f"rho ({metric})")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    from cabench.traceset import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return path
