"""Benchmark suites: which datasets, which methods, which metric settings; run, cache, rank.

A suite is a TOML file::

    data_root = "data"                  # optional; relative paths are tried here first

    [[datasets]]
    name = "cascade-gcamp6f"            # folder-safe: letters, digits, '.', '_', '-'
    path = "DS09-GCaMP6f-m-V1"          # anything read_traces reads (absolute, or relative to
                                        # data_root, else to the suite file's folder)
    source = "real"                     # optional: real / simulated / gan (default: the file's)
    frame_rate = 30.0                   # optional: needed for .npy / .csv
    options = { layout = "frames_cells" }   # optional: options of the reader
    resample = 30.0                     # optional: FFT-resample to this rate (Hz) first
    noise = 2.0                         # optional: add shot-like noise up to this nu
    seed = 1                            # optional: seed of that noise (default from the name)

    [[datasets]]
    name = "sim-6f"
    simulate = { preset = "GCaMP6f", cells = 10, duration = 120, noise = 2, seed = 1 }

    [[datasets]]
    name = "gan-6f"
    gan = "runs/calciumgan"             # a GAN run folder (resolved like path); traces are
    samples = 100                       # generated on the fly (unconditional: this many
    seed = 1                            # windows), cached in out_dir/gan/; source "gan"
    # reference = "real.h5"             # unconditional only: real data to compare with
                                        # (default: the run's training files)
    # spikes = "spikes.h5"              # conditional runs: input spikes (or simulate = {...})

    [[methods]]
    name = "oasis-ar1"
    params = { penalty = 1.0 }          # optional; validated by the method
    label = "oasis-ar1-p1"              # optional; default the name (needed to run a method
                                        # twice with different parameters)

    [metrics]                           # optional score_cell parameters
    bin_s = 0.04

Every (dataset, recording, method) case is run in its own folder
``out_dir/cases/<dataset>/<recording>/<method>/`` holding ``params.json`` (what was run, with
versions), ``log.json`` (status, seconds, warnings, traceback) and its outputs
(``estimate.npy``, ``scores.csv``). A case whose log says ``ok`` and whose ``params.json``
matches the current suite is reused, unless its trace file or the method's model folder (cnn's
``model``) was rewritten since. ``out_dir`` gets ``scores.csv`` (tidy: one row per
dataset, recording, cell, method and metric), ``leaderboard.csv`` and ``leaderboard.md``
(medians across cells per dataset and method, computed from ``scores.csv``), ``excluded.csv``
(cells left out by a dataset's ``noise`` condition because they are noisier than the target,
as CASCADE does) and figures (:mod:`cabench.benchmark.figures`).

Unconditional GAN datasets have no ground truth: each method gets one case per dataset that
compares the statistics of the spikes it infers on the generated traces with those it infers on
the real data (metrics ``rate_kl``, ``rate_wasserstein``, ..., ``wasserstein_norm``, lower is
better; see :mod:`cabench.benchmark.gan_datasets`); they have their own leaderboard section.

``resample`` and ``noise`` set a standard recording condition (:mod:`cabench.conditions`):
each recording is resampled to the rate, then every cell gets Gaussian noise scaled by
``sqrt(dF/F + 1)`` until its noise level nu (% Hz^-1/2) is the target. Methods whose parameters
include ``indicator`` get the recording's indicator when the suite does not set it, as the
method reads it (:meth:`Method.indicator_value`; e.g. ``OGB1`` -> the preset ``OGB-1``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import platform
import re
import sys
import time
import tomllib
import traceback
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cabench.errors import CabenchError
from cabench.noise_level import noise_level_nu
from cabench.traceset import atomic_path, ragged

SUITE_KEYS = ("name", "description", "data_root", "datasets", "methods", "metrics")
DATASET_KEYS = (
    "name", "path", "simulate", "source", "frame_rate", "options", "resample", "noise", "seed",
    "gan", "samples", "spikes", "reference",
)
#: keys of GAN datasets (cabench.benchmark.gan_datasets); those naming files resolve like path
GAN_KEYS = ("gan", "samples", "spikes", "reference")
PATH_KEYS = {"path": "dataset path", "gan": "gan run folder", "spikes": "spikes file",
             "reference": "reference file"}
METHOD_KEYS = ("name", "label", "params")
SCORE_COLUMNS = (
    "dataset", "source", "condition", "recording", "cell", "noise_level", "method", "metric",
    "value", "seconds", "status",
)
#: columns of a case's own scores.csv (the condition comes from the suite when they are joined)
CASE_COLUMNS = tuple(c for c in SCORE_COLUMNS if c != "condition")
#: metrics of the summary across datasets
SUMMARY_METRICS = ("corr_25hz", "corr_smoothed", "error", "bias", "van_rossum", "f1")
#: metrics of the leaderboard, in column order; the rank uses the first
RANK_METRIC = "corr_25hz"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

Progress = Callable[[int, int, str, str], None]


# --- the suite ----------------------------------------------------------------------------------
@dataclass
class DatasetSpec:
    """One dataset of a suite: a file/folder to read or simulation parameters."""

    name: str
    path: str | None = None
    simulate: dict[str, Any] | None = None
    source: str | None = None
    frame_rate: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    resample: float | None = None
    noise: float | None = None
    seed: int | None = None
    gan: str | None = None  # a GAN run folder (see cabench.benchmark.gan_datasets)
    samples: int | None = None
    spikes: str | None = None
    reference: str | None = None
    #: set by validation / by the suite runner for GAN datasets: the run kind and the cache
    gan_kind: str | None = field(default=None, repr=False)
    gan_cache: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def condition(self) -> str:
        """``native``, or the recording condition set by ``resample`` / ``noise``
        (e.g. ``30Hz-nu2``)."""
        parts = ([f"{self.resample:g}Hz"] if self.resample is not None else []) + (
            [f"nu{self.noise:g}"] if self.noise is not None else [])
        return "-".join(parts) or "native"

    def load(self) -> tuple[list[str], list[Any | None], list[dict[str, Any]]]:
        """The recordings of this dataset at its condition: their names, their TraceSets (one
        for a simulation; None for a recording whose every cell is noisier than ``noise``)
        and one row per cell left out by ``noise``."""
        if self.gan is not None:
            from cabench.benchmark.gan_datasets import load_sets

            sets = load_sets(self)
        elif self.simulate is not None:
            from cabench.simulators.pipeline import Simulation

            sets = [Simulation(dict(self.simulate)).run(keep_calcium=False)]
        else:
            from cabench.readers import read_traces

            sets = read_traces(self.path, frame_rate=self.frame_rate, **self.options)
        names = recording_names(sets)
        out: list[Any | None] = []
        excluded = []
        for i, (name, ts) in enumerate(zip(names, sets, strict=True)):
            if self.source is not None:
                ts.source = self.source
            ts, dropped = self._condition(ts, i)
            excluded += [dict(dataset=self.name, recording=name, **d) for d in dropped]
            out.append(ts)
        return names, out, excluded

    def _condition(self, ts: Any, index: int) -> tuple[Any | None, list[dict[str, Any]]]:
        """Resample and noise-match one recording; the cells dropped as too noisy."""
        from cabench.conditions import match_noise, resample

        if self.resample is not None:
            ts = resample(ts, self.resample)
        if self.noise is None:
            return ts, []
        seed = self.seed if self.seed is not None else zlib.crc32(self.name.encode())
        names = ts.cell_names or [str(c) for c in range(ts.n_cells)]
        matched, report = match_noise(ts, self.noise, seed=[seed, index])
        dropped = [dict(cell=names[c], nu=report["nu_before"][c],
                        reason=f"noise level above the target {self.noise:g}")
                   for c in report["dropped"]]
        return matched, dropped


@dataclass
class MethodSpec:
    """One method of a suite: registry name, parameters and the label used in outputs."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.name


@dataclass
class Suite:
    """A validated suite: datasets, methods and score_cell parameters."""

    datasets: list[DatasetSpec]
    methods: list[MethodSpec]
    metrics: dict[str, float] = field(default_factory=dict)
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _validate(self)


def _refuse_unknown(table: Any, valid: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise CabenchError(f"{where}: expected a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise CabenchError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return table


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _SAFE.match(name):
        raise CabenchError(
            f"{where}: name {name!r} must be a non-empty string of letters, digits, '.', '_' "
            "and '-' (it names a folder)"
        )
    return name


def _validate(suite: Suite) -> None:
    from cabench.benchmark.methods import get_method
    from cabench.benchmark.metrics import CELL_PARAMS
    from cabench.simulators.params import resolve
    from cabench.traceset import SOURCES

    if not suite.datasets:
        raise CabenchError("suite: no [[datasets]]")
    if not suite.methods:
        raise CabenchError("suite: no [[methods]]")
    seen: set[str] = set()
    for i, d in enumerate(suite.datasets):
        where = f"datasets[{i}]"
        _check_name(d.name, where)
        where = f"dataset {d.name!r}"
        if d.name in seen:
            raise CabenchError(f"{where}: name used twice")
        seen.add(d.name)
        if any(getattr(d, k) is not None for k in GAN_KEYS):
            from cabench.benchmark.gan_datasets import validate

            validate(d, where)
        elif (d.path is None) == (d.simulate is None):
            raise CabenchError(f"{where}: give exactly one of 'path' and 'simulate'")
        if d.source is not None and d.source not in SOURCES:
            raise CabenchError(f"{where}: source {d.source!r} is not one of {', '.join(SOURCES)}")
        for key, unit in (("resample", "Hz"), ("noise", "% Hz^-1/2")):
            v = getattr(d, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not math.isfinite(v) or v <= 0):
                raise CabenchError(f"{where}: {key} must be a positive number ({unit}), got {v!r}")
        if d.seed is not None and (isinstance(d.seed, bool) or not isinstance(d.seed, int)):
            raise CabenchError(f"{where}: seed must be an integer, got {d.seed!r}")
        if d.simulate is not None:
            if not isinstance(d.simulate, dict):
                raise CabenchError(f"{where}: 'simulate' must be a table of simulation params")
            try:
                resolve(d.simulate)
            except CabenchError as e:
                raise CabenchError(f"{where}: simulate: {e}") from None
        elif d.path is not None and not Path(d.path).exists():
            raise CabenchError(f"{where}: path {d.path} does not exist")
    seen = set()
    for i, m in enumerate(suite.methods):
        _check_name(m.label, f"methods[{i}]")
        if m.label in seen:
            raise CabenchError(
                f"method {m.label!r} listed twice; give the copies different 'label's"
            )
        seen.add(m.label)
        if not isinstance(m.params, dict):
            raise CabenchError(f"method {m.label!r}: 'params' must be a table")
        try:
            get_method(m.name, **m.params)
        except CabenchError as e:
            raise CabenchError(f"method {m.label!r}: {e}") from None
    _refuse_unknown(suite.metrics, tuple(CELL_PARAMS), "[metrics]")


def _resolve_path(path: str, suite_dir: Path, data_root: Path | None,
                  what: str = "dataset path") -> str:
    p = Path(path).expanduser()
    if p.is_absolute():
        tried = [p]
    else:
        tried = ([data_root / p] if data_root is not None else []) + [suite_dir / p]
    for t in tried:
        if t.exists():
            return str(t)
    raise CabenchError(
        f"{what} {path!r} not found (tried: {', '.join(str(t) for t in tried)})"
    )


def load_suite(path: str | Path, data_root: str | Path | None = None) -> Suite:
    """Read and validate a suite TOML file (see the module docstring).

    Relative dataset paths are looked up under ``data_root`` (this argument, else the suite's
    ``data_root`` key, relative to the suite file), then next to the suite file.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CabenchError(f"{path}: no such suite file") from None
    except tomllib.TOMLDecodeError as e:
        raise CabenchError(f"{path}: not valid TOML: {e}") from None
    _refuse_unknown(raw, SUITE_KEYS, str(path))
    suite_dir = path.resolve().parent
    if data_root is None and raw.get("data_root") is not None:
        data_root = suite_dir / Path(raw["data_root"]).expanduser()
    root = Path(data_root).expanduser() if data_root is not None else None
    datasets = []
    for i, d in enumerate(_list_of_tables(raw.get("datasets", []), "datasets", path)):
        _refuse_unknown(d, DATASET_KEYS, f"{path}: datasets[{i}] ({d.get('name', '?')})")
        d = {"name": "", **d}
        for key in PATH_KEYS:
            if d.get(key) is not None:
                try:
                    d[key] = _resolve_path(str(d[key]), suite_dir, root, PATH_KEYS[key])
                except CabenchError as e:
                    raise CabenchError(f"{path}: dataset {d.get('name', i)!r}: {e}") from None
        if d.get("simulate") is not None and isinstance(d["simulate"], dict):
            sim = dict(d["simulate"])
            if sim.get("seed") is None:  # a fixed seed keeps reruns and cached cases the same
                sim["seed"] = zlib.crc32(str(d.get("name", i)).encode())
            d["simulate"] = sim
        datasets.append(DatasetSpec(**d))
    methods = []
    for i, m in enumerate(_list_of_tables(raw.get("methods", []), "methods", path)):
        _refuse_unknown(m, METHOD_KEYS, f"{path}: methods[{i}] ({m.get('name', '?')})")
        if "name" not in m:
            raise CabenchError(f"{path}: methods[{i}] has no 'name'")
        methods.append(MethodSpec(**m))
    for i, d in enumerate(datasets):
        if not d.name:
            raise CabenchError(f"{path}: datasets[{i}] has no 'name'")
    try:
        return Suite(
            datasets=datasets,
            methods=methods,
            metrics=dict(raw.get("metrics", {})),
            name=str(raw.get("name", path.stem)),
            description=str(raw.get("description", "")),
        )
    except CabenchError as e:
        raise CabenchError(f"{path}: {e}") from None


def _list_of_tables(value: Any, key: str, path: Path) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CabenchError(f"{path}: '{key}' must be written as [[{key}]] tables")
    return value


def default_suite(
    presets: tuple[str, ...] = ("GCaMP6f", "GCaMP6s", "jGCaMP8f"),
    noise: tuple[float, ...] = (2.0, 6.0),
    cells: int = 10,
    duration: float = 120.0,
    methods: list[str] | None = None,
) -> Suite:
    """The built-in suite: simulated data (each preset x each noise level), every method that
    runs with its default parameters (installed, with its trained model if it needs one)."""
    from cabench.benchmark.methods import ready

    datasets = [
        DatasetSpec(
            name=f"sim-{p}-noise{n:g}",
            simulate=dict(preset=p, cells=cells, duration=duration, noise=n, seed=1 + i),
        )
        for i, (p, n) in enumerate((p, n) for p in presets for n in noise)
    ]
    names = ready() if methods is None else methods
    return Suite(datasets, [MethodSpec(m) for m in names], name="default",
                 description="simulated indicators x noise levels, all ready methods")


# --- files --------------------------------------------------------------------------------------
def _atomic(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write ``path`` through a temporary name (cabench.traceset.atomic_path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)


def _write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text))


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    _atomic(path, lambda f: df.to_csv(f, index=False, lineterminator="\n"))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- cases --------------------------------------------------------------------------------------
@dataclass
class Case:
    """One (dataset, recording, method) unit of work and where it lives."""

    dataset: DatasetSpec
    recording: str
    index: int  # the recording's position in dataset.load()
    method: MethodSpec
    metrics: dict[str, float]
    folder: Path

    @property
    def seed(self) -> int:
        """Seed of numpy's global generator while the method runs (from the case label)."""
        return zlib.crc32(self.label.encode())

    @property
    def label(self) -> str:
        return f"{self.dataset.name}/{self.recording}/{self.method.label}"

    def spec(self) -> dict[str, Any]:
        """What determines the result: compared with params.json to decide on reuse."""
        return _jsonable(dict(
            method=self.method.name,
            method_label=self.method.label,
            method_params=self.method.params,
            dataset=_dataset_spec(self.dataset),
            recording=self.recording,
            recording_index=self.index,
            metrics=self.metrics,
            global_seed=self.seed,
        ))


def _dataset_spec(d: DatasetSpec) -> dict[str, Any]:
    """The dataset's fields that determine its cases: GAN fields only when set (so that specs
    of other datasets stay as they were), and of the GAN cache only its key."""
    spec = asdict(d)
    for k in (*GAN_KEYS, "gan_kind"):
        if spec[k] is None:
            del spec[k]
    cache = spec.pop("gan_cache")
    if d.gan is not None:
        spec["gan_cache_key"] = cache["key"] if cache else None
    return spec


def _versions(method_name: str) -> dict[str, str]:
    from cabench import __version__
    from cabench.benchmark.methods import method_class

    return dict(
        cabench=__version__,
        method=method_class(method_name).version(),
        numpy=np.__version__,
        pandas=pd.__version__,
        python=platform.python_version(),
    )


def recording_names(sets: list[Any]) -> list[str]:
    names: list[str] = []
    for i, ts in enumerate(sets):
        raw = ""
        if len(sets) > 1:
            raw = ts.cell_names[0] if ts.cell_names and ts.n_cells == 1 else f"rec{i:03d}"
        raw = re.sub(r"[^A-Za-z0-9._-]+", "_", raw or "all").strip("._") or f"rec{i:03d}"
        if raw in names:
            raw = f"{raw}-{i}"
        names.append(raw)
    return names


def _cell_labels(ts: Any) -> list[tuple[int, int, str]]:
    out = []
    for t in range(ts.n_trials):
        for c in range(ts.n_cells):
            name = ts.cell_names[c] if ts.cell_names else str(c)
            out.append((t, c, name if ts.n_trials == 1 else f"{name}:trial{t}"))
    return out


def _failed_rows(case: Case, source: str, seconds: float) -> pd.DataFrame:
    from cabench.benchmark.metrics import score_cell

    metrics = list(score_cell(np.zeros(3), None, [], frame_rate=1.0).keys())
    return pd.DataFrame([
        dict(dataset=case.dataset.name, source=source, recording=case.recording, cell="",
             noise_level=float("nan"), method=case.method.label, metric=m,
             value=float("nan"), seconds=seconds, status="failed")
        for m in metrics
    ], columns=list(CASE_COLUMNS))


def _run_case(case: Case, ts: Any | None) -> dict[str, Any]:
    """Run one case in its folder (never raises); returns its log."""
    import warnings as _warnings

    from cabench.benchmark.methods import get_method
    from cabench.benchmark.methods.base import global_numpy_seed
    from cabench.benchmark.metrics import score_cell

    if case.dataset.gan_kind == "unconditional":  # no ground truth: GAN vs real statistics
        from cabench.benchmark.gan_datasets import run_statistics_case

        return run_statistics_case(case, ts)
    folder = case.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    source = case.dataset.source or (ts.source if ts is not None else "")
    log: dict[str, Any] = dict(case=case.label, started=started)
    params = dict(case.spec(), versions=_versions(case.method.name))
    try:
        if ts is None:  # the dataset failed to load: load it here to record why
            ts = case.dataset.load()[1][case.index]
        source = case.dataset.source or ts.source
        if not ts.has_spikes:
            raise CabenchError("the recording has no ground-truth spikes to score against")
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            method = get_method(case.method.name, **_method_params(case.method, ts))
            with global_numpy_seed(case.seed):  # independent of case order and process
                result = method.infer(ts.traces, ts.frame_rate)
            frame_times = ts.times()
            nu = noise_level_nu(ts.traces, ts.frame_rate)
            # methods place spike k / frame_rate seconds after the first frame: put them on
            # the recording's own clock (real frame times drift from a nominal rate)
            inferred = [on_clock(x, ts.frame_rate, frame_times) for x in result.spike_times]
            rows = []
            n_cells = ts.n_cells
            for t, c, name in _cell_labels(ts):
                scores = score_cell(
                    result.estimate[t, c], frame_times, ts.spikes(t, c),
                    inferred_spike_times=inferred[t * n_cells + c], **case.metrics,
                )
                rows += [
                    dict(dataset=case.dataset.name, source=source, recording=case.recording,
                         cell=name, noise_level=nu[c], method=case.method.label, metric=k,
                         value=float(v), seconds=result.seconds, status="ok")
                    for k, v in scores.items()
                ]
        params.update(resolved_params=result.params, version=result.version)
        _write_json(folder / "params.json", params)
        _atomic(folder / "estimate.npy", lambda f: np.save(f, result.estimate), "wb")
        times, offsets = ragged(inferred)
        _atomic(folder / "spikes.npz",
                lambda f: np.savez(f, spike_times=times, spike_offsets=offsets), "wb")
        _write_csv(folder / "scores.csv", pd.DataFrame(rows, columns=list(CASE_COLUMNS)))
        log.update(
            status="ok",
            seconds=time.perf_counter() - t0,
            inference_seconds=result.seconds,
            warnings=list(result.warnings) + [f"{w.category.__name__}: {w.message}"
                                              for w in caught],
            error=None,
        )
    except Exception as e:  # a failed case is recorded, never raised
        seconds = time.perf_counter() - t0
        with contextlib.suppress(OSError):
            (folder / "estimate.npy").unlink(missing_ok=True)
            (folder / "spikes.npz").unlink(missing_ok=True)
        _write_json(folder / "params.json", params)
        _write_csv(folder / "scores.csv", _failed_rows(case, source, float("nan")))
        log.update(status="failed", seconds=seconds, warnings=[],
                   error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    log["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_json(folder / "log.json", log)
    return log


def on_clock(times: np.ndarray, frame_rate: float, frame_times: np.ndarray) -> np.ndarray:
    """Times ``k / frame_rate`` (s, k fractional) mapped onto the frame times (s)."""
    k = np.arange(frame_times.size, dtype=np.float64)
    x = np.asarray(times, dtype=np.float64) * frame_rate
    out = np.interp(x, k, frame_times)
    if frame_times.size > 1:  # beyond the last frame: continue at the last interval
        late = x > k[-1]
        out[late] = frame_times[-1] + (x[late] - k[-1]) * (frame_times[-1] - frame_times[-2])
    return out


def _method_params(spec: MethodSpec, ts: Any) -> dict[str, Any]:
    """The suite's parameters, plus the recording's indicator for indicator-aware methods."""
    from cabench.benchmark.methods import method_class

    params = dict(spec.params)
    cls = method_class(spec.name)
    if "indicator" in cls.params and "indicator" not in params:
        value = cls.indicator_value(ts.indicator)
        if value is not None:
            params["indicator"] = value
    return params


def _reusable(case: Case, force: bool, rerun_failed: bool) -> bool:
    if force:
        return False
    log = _read_json(case.folder / "log.json")
    params = _read_json(case.folder / "params.json")
    if log is None or params is None or not (case.folder / "scores.csv").is_file():
        return False
    if {k: params.get(k) for k in case.spec()} != case.spec():
        return False  # the suite changed what this case means
    if _input_newer(case):
        return False  # the trace file was rewritten (e.g. regenerated twins) since the case ran
    if _model_newer(case):
        return False  # the method's model folder was rewritten (e.g. a retrained cnn)
    status = log.get("status")
    return status == "ok" or (status == "failed" and not rerun_failed)


def _model_newer(case: Case) -> bool:
    """Whether a file of the method's model folder (e.g. cnn's ``model=``) changed after the
    case's scores were written: the same path can hold a retrained model."""
    from cabench.benchmark.methods import get_method

    try:
        folder = get_method(case.method.name, **case.method.params).model_folder()
    except CabenchError:
        return False
    if folder is None or not folder.is_dir():
        return False
    return _newer_than_scores(case, [f for f in folder.iterdir() if f.is_file()])


def _input_newer(case: Case) -> bool:
    """Whether the dataset's trace file (a file, not a folder) changed after the case's scores
    were written: the same path can hold new traces."""
    path = Path(case.dataset.path) if case.dataset.path else None
    if path is None or not path.is_file():
        return False
    return _newer_than_scores(case, [path])


def _newer_than_scores(case: Case, files: list[Path]) -> bool:
    written = (case.folder / "scores.csv").stat().st_mtime_ns
    return any(f.stat().st_mtime_ns > written for f in files)


# --- running ------------------------------------------------------------------------------------
def _cases(suite: Suite, out_dir: Path) -> tuple[list[Case], dict[str, list[Any]], pd.DataFrame]:
    """All cases, the loaded recordings per dataset and the cells left out by noise conditions.

    A dataset that fails to load gives one failed case per method under recording ``all``; a
    recording whose every cell is noisier than its dataset's ``noise`` gives no case.
    """
    cases: list[Case] = []
    loaded: dict[str, list[Any]] = {}
    excluded: list[dict[str, Any]] = []
    for d in suite.datasets:
        try:
            names, sets, dropped = d.load()
            loaded[d.name] = sets
            excluded += dropped
        except Exception:
            names, sets = ["all"], [None]
        for i, (rec, ts) in enumerate(zip(names, sets, strict=True)):
            if ts is None and d.name in loaded:
                continue
            for m in suite.methods:
                folder = out_dir / "cases" / d.name / rec / m.label
                cases.append(Case(d, rec, i, m, dict(suite.metrics), folder))
    columns = ["dataset", "recording", "cell", "nu", "reason"]
    return cases, loaded, pd.DataFrame(excluded, columns=columns)


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    jobs: int = 1,
    force: bool = False,
    rerun_failed: bool = False,
    progress: Progress | None = None,
    scheduler: Any = None,
    figures: bool = True,
) -> pd.DataFrame:
    """Run every case of ``suite`` under ``out_dir`` and write scores, leaderboards, figures.

    Cases already done (log ``ok``, same parameters) are reused unless ``force``; failed cases
    are re-run with ``rerun_failed`` or ``force``. A failing case never raises: its log holds
    the traceback and its rows in the scores have NaN values and status ``failed``. ``jobs``
    > 1 runs cases in that many local processes; ``scheduler`` (a dask.distributed address such
    as ``tcp://host:8786``, or a Client) runs them on a cluster; results are the same as a
    serial run's (see :mod:`cabench.benchmark.executors`). ``progress(done, total,
    case_label, status)`` is called after each case (status ``ok``, ``failed`` or ``reused``).
    Returns the tidy scores (also written to ``scores.csv``). Local workers are started with
    *forkserver*, so a script calling this with ``jobs > 1`` needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    from cabench.benchmark.executors import run_tasks

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(d.gan is not None for d in suite.datasets):
        from cabench.benchmark.gan_datasets import materialise

        materialise(suite, out, force=force)  # generated traces, cached in out/gan/
    cases, loaded, excluded = _cases(suite, out)
    total = len(cases)
    done = 0
    todo = []
    for case in cases:
        if _reusable(case, force, rerun_failed):
            done += 1
            if progress is not None:
                progress(done, total, case.label, "reused")
        else:
            todo.append(case)

    def recording(case: Case) -> Any | None:
        sets = loaded.get(case.dataset.name)
        return None if sets is None else sets[case.index]

    def size(case: Case) -> int:
        ts = recording(case)
        return 0 if ts is None else ts.traces.size

    # the longest cases first, so that workers do not wait on one long case at the end
    todo.sort(key=size, reverse=True)
    tasks = [(c, recording(c)) for c in todo]
    for i, log in run_tasks(_run_case, tasks, jobs=jobs, scheduler=scheduler):
        done += 1
        if progress is not None:
            progress(done, total, todo[i].label, log.get("status", "failed"))

    scores = _read_scores(cases)
    _write_csv(out / "scores.csv", scores)
    _write_csv(out / "excluded.csv", excluded)
    board = leaderboard(scores)
    _write_csv(out / "leaderboard.csv", board)
    _write_csv(out / "summary.csv", summary(board, scores))
    _write_text(out / "leaderboard.md", leaderboard_markdown(board, scores))
    if figures:
        from cabench.benchmark.figures import write_figures

        write_figures(out, scores, _examples(cases, loaded, scores))
    return scores


def _examples(cases: list[Case], loaded: dict[str, list[Any]], scores: pd.DataFrame,
              n: int = 3) -> list[dict[str, Any]]:
    """Example cells for the trace figure: from up to ``n`` datasets spread over the suite, the
    cell whose ``corr_25hz`` (median over methods) is the dataset's median, with every method's
    estimate and spike times (from the case folders)."""
    ok = scores[(scores["status"] == "ok") & (scores["metric"] == RANK_METRIC)]
    datasets = list(dict.fromkeys(ok["dataset"]))
    if not datasets:
        return []
    picks = [datasets[i] for i in sorted({round(j * (len(datasets) - 1) / max(n - 1, 1))
                                          for j in range(min(n, len(datasets)))})]
    examples = []
    for name in picks:
        per_cell = ok[ok["dataset"] == name].groupby(["recording", "cell"])["value"].median()
        per_cell = per_cell.dropna().sort_values(kind="stable")
        if per_cell.empty:
            continue
        recording, cell = per_cell.index[len(per_cell) // 2]
        chosen = [c for c in cases if c.dataset.name == name and c.recording == recording]
        ts = loaded.get(name, [None])[chosen[0].index] if chosen else None
        if ts is None:
            continue
        t, c = next((t, c) for t, c, label in _cell_labels(ts) if label == cell)
        estimates = {}
        for case in chosen:
            try:
                est = np.load(case.folder / "estimate.npy")[t, c]
                with np.load(case.folder / "spikes.npz") as z:
                    i = t * ts.n_cells + c  # rows in (trial, cell) order, as written
                    lo, hi = z["spike_offsets"][i : i + 2]
                    spikes = z["spike_times"][lo:hi]
            except (OSError, ValueError, KeyError):
                continue
            estimates[case.method.label] = dict(estimate=est, spike_times=spikes)
        examples.append(dict(
            title=f"{name}\n{cell if len(cell) <= 48 else cell[:45] + '...'}",
            frame_times=ts.times(),
            trace=ts.traces[t, c], true_spike_times=ts.spikes(t, c), estimates=estimates,
        ))
    return examples


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame(columns=list(SCORE_COLUMNS))


def _read_scores(cases: list[Case]) -> pd.DataFrame:
    """The tidy scores of all cases, in case order. Files in the current layout without quoted
    fields are joined as text and parsed once (a 143,000-case suite: 30 s instead of 10 min);
    the others are read one by one (:func:`_read_case_scores`)."""
    header = ",".join(CASE_COLUMNS)
    lines: list[str] = []
    parts = []
    for i, case in enumerate(cases):
        try:
            head, _, body = (case.folder / "scores.csv").read_text().partition("\n")
        except (OSError, UnicodeDecodeError):
            head = body = ""
        if head.rstrip("\r") == header and '"' not in body:
            cond = case.dataset.condition
            lines += [f"{line},{cond},{i}" for line in body.splitlines() if line]
        else:
            parts.append(_read_case_scores(case).assign(_case=i))
    if lines:
        fast = pd.read_csv(io.StringIO("\n".join(lines)), names=[*CASE_COLUMNS, "condition",
                           "_case"], dtype={"cell": str, "recording": str},
                           keep_default_na=False, na_values=[""])
        fast["cell"] = fast["cell"].fillna("")
        parts.append(fast)
    if not parts:
        return _empty_scores()
    scores = pd.concat(parts, ignore_index=True).sort_values("_case", kind="stable")
    return scores[list(SCORE_COLUMNS)].reset_index(drop=True)


def _read_case_scores(case: Case) -> pd.DataFrame:
    try:
        df = pd.read_csv(case.folder / "scores.csv", dtype={"cell": str, "recording": str},
                         keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.EmptyDataError):
        df = _failed_rows(case, case.dataset.source or "", float("nan"))
    if set(CASE_COLUMNS) - set(df.columns):  # written by an older cabench
        df = _failed_rows(case, case.dataset.source or "", float("nan"))
    df["cell"] = df["cell"].fillna("")
    df["condition"] = case.dataset.condition
    return df[list(SCORE_COLUMNS)]


# --- leaderboards -------------------------------------------------------------------------------
def leaderboard(scores: pd.DataFrame) -> pd.DataFrame:
    """Dataset x method: median of each metric across cells, with a rank per dataset by the
    median ``corr_25hz`` (1 = best; ties share the best rank; NaN last), the number of cells
    scored and of failed recordings, and the median noise level nu of the scored cells
    (% Hz^-1/2). Computed from tidy scores only (as written to ``scores.csv``).

    Unconditional GAN datasets (scored by GAN-vs-real statistics of inferred spikes, no ground
    truth) follow the other datasets with their own columns, rank and empty ``n_cells``
    (:func:`cabench.benchmark.gan_datasets.statistics_leaderboard`)."""
    from cabench.benchmark.gan_datasets import split_scores, statistics_leaderboard

    ordinary, stats = split_scores(scores)
    if stats.empty:
        return _leaderboard(scores)
    if ordinary.empty:
        return statistics_leaderboard(stats)
    return pd.concat([_leaderboard(ordinary), statistics_leaderboard(stats)], ignore_index=True)


def _leaderboard(scores: pd.DataFrame, rank_metric: str = RANK_METRIC,
                 ascending: bool = False) -> pd.DataFrame:
    if scores.empty:
        return pd.DataFrame(
            columns=["dataset", "method", "rank", "n_cells", "n_failed", "noise_level"])
    s = scores.copy()
    datasets = list(dict.fromkeys(s["dataset"]))
    methods = list(dict.fromkeys(s["method"]))
    metrics = list(dict.fromkeys(s["metric"]))
    s["dataset"] = pd.Categorical(s["dataset"], datasets)
    s["method"] = pd.Categorical(s["method"], methods)
    s["metric"] = pd.Categorical(s["metric"], metrics)
    med = s.pivot_table(index=["dataset", "method"], columns="metric", values="value",
                        aggfunc="median", observed=True, dropna=False)
    med = med.reindex(columns=metrics)
    one = s[s["metric"] == metrics[0]]
    ok = one[one["status"] == "ok"]
    n_cells = ok.groupby(["dataset", "method"], observed=True).size()
    nu = ok.groupby(["dataset", "method"], observed=True)["noise_level"].median()
    failed = s[s["status"] != "ok"].drop_duplicates(["dataset", "recording", "method"])
    n_failed = failed.groupby(["dataset", "method"], observed=True).size()
    board = med.reset_index()
    board.columns.name = None
    board.insert(2, "n_cells", _at_rows(n_cells, board, 0).astype(int))
    board.insert(3, "n_failed", _at_rows(n_failed, board, 0).astype(int))
    board.insert(4, "noise_level", _at_rows(nu, board, np.nan))
    key = board[rank_metric] if rank_metric in board else pd.Series(np.nan, index=board.index)
    rank = key.groupby(board["dataset"], observed=True).rank(
        ascending=ascending, method="min", na_option="bottom")
    board.insert(2, "rank", rank.astype(int))
    board = board.sort_values(["dataset", "rank", "method"], kind="stable")
    board["dataset"] = board["dataset"].astype(str)
    board["method"] = board["method"].astype(str)
    return board.reset_index(drop=True)


def _at_rows(series: pd.Series, board: pd.DataFrame, fill: float) -> np.ndarray:
    """A (dataset, method) series at the board's rows, by plain labels (reindexing between
    categorical indexes fails in pandas when their codes differ in width, e.g. with an empty
    series against more than 127 datasets)."""
    at = {(str(d), str(m)): v for (d, m), v in series.items()}
    keys = zip(board["dataset"].astype(str), board["method"].astype(str), strict=True)
    return np.array([at.get(k, fill) for k in keys], dtype=np.float64)


def summary(board: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Methods across datasets, per source and condition: the number of datasets, the median
    over datasets of each dataset's median (:data:`SUMMARY_METRICS`), the mean rank and the
    number of datasets where the method ranks first. Sorted best first by that median
    ``corr_25hz``. Unconditional GAN datasets follow in rows of their own, with their own
    metrics (:func:`cabench.benchmark.gan_datasets.statistics_summary`)."""
    from cabench.benchmark.gan_datasets import split_scores, statistics_summary

    ordinary, stats = split_scores(scores)
    if stats.empty:
        return _summary(board, scores)
    names = set(stats["dataset"].astype(str))
    is_stat = board["dataset"].isin(names)
    parts = [statistics_summary(board[is_stat], stats)]
    if not ordinary.empty:
        parts.insert(0, _summary(board[~is_stat], ordinary))
    return pd.concat(parts, ignore_index=True)


def _summary(board: pd.DataFrame, scores: pd.DataFrame,
             metrics: tuple[str, ...] = SUMMARY_METRICS, rank_metric: str = RANK_METRIC,
             ascending: bool = False, scored: str = "n_cells") -> pd.DataFrame:
    """Per source, condition and method: n_datasets, mean rank, wins and the median of each
    of ``metrics`` over the board's rows (datasets) with ``scored`` set (``n_cells`` > 0, or
    ``n_failed`` == 0 for boards without cells); best ``rank_metric`` first."""
    columns = ["source", "condition", "method", "n_datasets", "mean_rank", "wins", *metrics]
    if board.empty:
        return pd.DataFrame(columns=columns)
    kind = scores.drop_duplicates("dataset").set_index("dataset")[["source", "condition"]]
    b = board.join(kind, on="dataset")
    b = b[b["n_cells"] > 0] if scored == "n_cells" else b[b["n_failed"] == 0]
    if b.empty:
        return pd.DataFrame(columns=columns)
    groups = b.groupby(["source", "condition", "method"], sort=False)
    out = groups[[m for m in metrics if m in b]].median()
    out.insert(0, "n_datasets", groups.size())
    out.insert(1, "mean_rank", groups["rank"].mean())
    out.insert(2, "wins", groups["rank"].apply(lambda r: int((r == 1).sum())))
    out = out.reset_index().reindex(columns=columns)
    key = out[rank_metric].fillna(np.inf if ascending else -np.inf).to_numpy()
    key = key if ascending else -key
    order = np.lexsort((key, out["condition"].to_numpy(), out["source"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A table as GitHub markdown (numbers right-aligned, floats to ``digits`` places)."""
    cols = list(table.columns)

    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "" if not np.isfinite(v) else f"{v:.{digits}f}"
        return str(v)

    numeric = {c: pd.api.types.is_numeric_dtype(table[c]) for c in cols}
    lines = ["| " + " | ".join(cols) + " |",
             "| " + " | ".join("---:" if numeric[c] else "---" for c in cols) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def leaderboard_markdown(board: pd.DataFrame, scores: pd.DataFrame) -> str:
    """The summary across datasets and the per-dataset leaderboard as markdown; unconditional
    GAN datasets in a section of their own that says what their columns compare."""
    from cabench.benchmark.gan_datasets import STAT_METRICS, split_scores, statistics_markdown

    ordinary, stats = split_scores(scores)
    if not stats.empty:
        names = set(stats["dataset"].astype(str))
        rest = board[~board["dataset"].isin(names)]
        rest = rest[[c for c in rest.columns if c not in STAT_METRICS]]
        text = statistics_markdown(board, scores)
        if ordinary.empty:
            return text.lstrip("\n")
        return leaderboard_markdown(rest.reset_index(drop=True), ordinary) + text
    return ("## Across datasets (median of dataset medians)\n\n"
            + markdown_table(summary(board, scores))
            + "\n## Per dataset (median over cells)\n\n" + markdown_table(board))


def format_leaderboard(path: str | Path) -> str:
    """The markdown leaderboard of a run: ``path`` is its output folder or its ``scores.csv``
    (the leaderboard is recomputed from the scores; a folder may hold them compressed as
    ``scores.csv.gz``, as the committed reference results do)."""
    p = Path(path)
    scores_path = p
    if p.is_dir():
        gz = p / "scores.csv.gz"
        scores_path = gz if gz.is_file() and not (p / "scores.csv").is_file() else p / "scores.csv"
    if not scores_path.is_file():
        raise CabenchError(f"{path}: no scores.csv (run a suite into this folder first)")
    try:
        scores = pd.read_csv(scores_path, dtype={"cell": str, "recording": str})
    except (ValueError, pd.errors.EmptyDataError) as e:
        raise CabenchError(f"{scores_path}: unreadable scores: {e}") from None
    missing = sorted(set(SCORE_COLUMNS) - set(scores.columns))
    if missing:
        raise CabenchError(f"{scores_path}: not a scores file (missing {', '.join(missing)})")
    return leaderboard_markdown(leaderboard(scores), scores)


def main() -> None:  # pragma: no cover - a quick manual run: python -m cabench.benchmark.suite
    out = sys.argv[1] if len(sys.argv) > 1 else "suite-out"
    t0 = time.perf_counter()
    run_suite(default_suite(), out, jobs=int(sys.argv[2]) if len(sys.argv) > 2 else 1,
              force=True)
    print(format_leaderboard(out))
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
