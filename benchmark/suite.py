"""Benchmark suites: which datasets, which methods, which metric settings; run, cache, rank.

A suite is a TOML file::

    data_root = "data"                  # optional; relative paths are tried here first

    [[datasets]]
    name = "cascade-gcamp6f"            # folder-safe: letters, digits, '.', '_', '-'
    path = "DS09-GCaMP6f-m-V1"          # anything read_traces reads (absolute, or relative to
                                        # data_root, else to the suite file's folder)
    source = "real"                     # optional: real / simulated / gan (default: the file's)
    frame_rate = 30.0                   # optional: needed for .npy / .csv
    options = { layout = "cells-frames" }   # optional: options of the reader

    [[datasets]]
    name = "sim-6f"
    simulate = { preset = "GCaMP6f", cells = 10, duration = 120, noise = 2, seed = 1 }

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
matches the current suite is reused. ``out_dir`` gets ``scores.csv`` (tidy: one row per
dataset, recording, cell, method and metric), ``leaderboard.csv`` and ``leaderboard.md``
(medians across cells per dataset and method, computed from ``scores.csv``).
"""

from __future__ import annotations

import contextlib
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cabench.errors import CabenchError
from cabench.traceset import atomic_path

SUITE_KEYS = ("name", "description", "data_root", "datasets", "methods", "metrics")
DATASET_KEYS = ("name", "path", "simulate", "source", "frame_rate", "options")
METHOD_KEYS = ("name", "label", "params")
SCORE_COLUMNS = (
    "dataset", "source", "recording", "cell", "method", "metric", "value", "seconds", "status",
)
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

    def load(self) -> list[Any]:
        """The recordings of this dataset as TraceSets (one for a simulation)."""
        if self.simulate is not None:
            from cabench.simulators.pipeline import Simulation

            sets = [Simulation(dict(self.simulate)).run(keep_calcium=False)]
        else:
            from cabench.readers import read_traces

            sets = read_traces(self.path, frame_rate=self.frame_rate, **self.options)
        if self.source is not None:
            for ts in sets:
                ts.source = self.source
        return sets


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
        if (d.path is None) == (d.simulate is None):
            raise CabenchError(f"{where}: give exactly one of 'path' and 'simulate'")
        if d.source is not None and d.source not in SOURCES:
            raise CabenchError(f"{where}: source {d.source!r} is not one of {', '.join(SOURCES)}")
        if d.simulate is not None:
            if not isinstance(d.simulate, dict):
                raise CabenchError(f"{where}: 'simulate' must be a table of simulation params")
            try:
                resolve(d.simulate)
            except CabenchError as e:
                raise CabenchError(f"{where}: simulate: {e}") from None
        elif not Path(d.path).exists():
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


def _resolve_path(path: str, suite_dir: Path, data_root: Path | None) -> str:
    p = Path(path).expanduser()
    if p.is_absolute():
        tried = [p]
    else:
        tried = ([data_root / p] if data_root is not None else []) + [suite_dir / p]
    for t in tried:
        if t.exists():
            return str(t)
    raise CabenchError(
        f"dataset path {path!r} not found (tried: {', '.join(str(t) for t in tried)})"
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
        if d.get("path") is not None:
            try:
                d["path"] = _resolve_path(str(d["path"]), suite_dir, root)
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
    """The built-in suite: simulated data (each preset x each noise level), installed methods."""
    from cabench.benchmark.methods import installed

    datasets = [
        DatasetSpec(
            name=f"sim-{p}-noise{n:g}",
            simulate=dict(preset=p, cells=cells, duration=duration, noise=n, seed=1 + i),
        )
        for i, (p, n) in enumerate((p, n) for p in presets for n in noise)
    ]
    names = installed() if methods is None else methods
    return Suite(datasets, [MethodSpec(m) for m in names], name="default",
                 description="simulated indicators x noise levels, all installed methods")


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
            dataset=asdict(self.dataset),
            recording=self.recording,
            recording_index=self.index,
            metrics=self.metrics,
            global_seed=self.seed,
        ))


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


def _recording_names(sets: list[Any]) -> list[str]:
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
             method=case.method.label, metric=m, value=float("nan"), seconds=seconds,
             status="failed")
        for m in metrics
    ], columns=list(SCORE_COLUMNS))


def _run_case(case: Case, ts: Any | None) -> dict[str, Any]:
    """Run one case in its folder (never raises); returns its log."""
    import warnings as _warnings

    from cabench.benchmark.methods import get_method
    from cabench.benchmark.metrics import score_cell

    folder = case.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    source = case.dataset.source or (ts.source if ts is not None else "")
    log: dict[str, Any] = dict(case=case.label, started=started)
    params = dict(case.spec(), versions=_versions(case.method.name))
    try:
        if ts is None:
            ts = case.dataset.load()[case.index]
        source = case.dataset.source or ts.source
        if not ts.has_spikes:
            raise CabenchError("the recording has no ground-truth spikes to score against")
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            method = get_method(case.method.name, **case.method.params)
            # some wrapped packages draw from numpy's global generator: seed it per case so
            # that results do not depend on the order of cases or on the process
            state = np.random.get_state()  # noqa: NPY002
            np.random.seed(case.seed)  # noqa: NPY002
            try:
                result = method.infer(ts.traces, ts.frame_rate)
            finally:
                np.random.set_state(state)  # noqa: NPY002
            frame_times = ts.times()
            rows = []
            n_cells = ts.n_cells
            for t, c, name in _cell_labels(ts):
                scores = score_cell(
                    result.estimate[t, c], frame_times, ts.spikes(t, c),
                    inferred_spike_times=result.spike_times[t * n_cells + c], **case.metrics,
                )
                rows += [
                    dict(dataset=case.dataset.name, source=source, recording=case.recording,
                         cell=name, method=case.method.label, metric=k, value=float(v),
                         seconds=result.seconds, status="ok")
                    for k, v in scores.items()
                ]
        params.update(resolved_params=result.params, version=result.version)
        _write_json(folder / "params.json", params)
        _atomic(folder / "estimate.npy", lambda f: np.save(f, result.estimate), "wb")
        _write_csv(folder / "scores.csv", pd.DataFrame(rows, columns=list(SCORE_COLUMNS)))
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
        _write_json(folder / "params.json", params)
        _write_csv(folder / "scores.csv", _failed_rows(case, source, float("nan")))
        log.update(status="failed", seconds=seconds, warnings=[],
                   error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    log["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_json(folder / "log.json", log)
    return log


def _reusable(case: Case, force: bool, rerun_failed: bool) -> bool:
    if force:
        return False
    log = _read_json(case.folder / "log.json")
    params = _read_json(case.folder / "params.json")
    if log is None or params is None or not (case.folder / "scores.csv").is_file():
        return False
    if {k: params.get(k) for k in case.spec()} != case.spec():
        return False  # the suite changed what this case means
    status = log.get("status")
    return status == "ok" or (status == "failed" and not rerun_failed)


# --- running ------------------------------------------------------------------------------------
def _cases(suite: Suite, out_dir: Path) -> tuple[list[Case], dict[str, list[Any]]]:
    """All cases and the loaded recordings per dataset (a dataset that fails to load gives
    one failed case per method under recording 'all')."""
    cases: list[Case] = []
    loaded: dict[str, list[Any]] = {}
    for d in suite.datasets:
        try:
            sets = d.load()
            names = _recording_names(sets)
            loaded[d.name] = sets
        except Exception:
            names = ["all"]
        for i, rec in enumerate(names):
            for m in suite.methods:
                folder = out_dir / "cases" / d.name / rec / m.label
                cases.append(Case(d, rec, i, m, dict(suite.metrics), folder))
    return cases, loaded


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    jobs: int = 1,
    force: bool = False,
    rerun_failed: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Run every case of ``suite`` under ``out_dir`` and write scores and leaderboards.

    Cases already done (log ``ok``, same parameters) are reused unless ``force``; failed cases
    are re-run with ``rerun_failed`` or ``force``. A failing case never raises: its log holds
    the traceback and its rows in the scores have NaN values and status ``failed``. ``jobs``
    > 1 runs cases in that many processes, with the same results as a serial run.
    ``progress(done, total, case_label, status)`` is called after each case (status ``ok``,
    ``failed`` or ``reused``). Returns the tidy scores (also written to ``scores.csv``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases, loaded = _cases(suite, out)
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

    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_case, c, recording(c)): c for c in todo}
            for fut in as_completed(futures):
                done += 1
                status = fut.result().get("status", "failed")
                if progress is not None:
                    progress(done, total, futures[fut].label, status)
    else:
        for c in todo:
            status = _run_case(c, recording(c)).get("status", "failed")
            done += 1
            if progress is not None:
                progress(done, total, c.label, status)

    parts = [_read_case_scores(c) for c in cases]
    scores = pd.concat(parts, ignore_index=True) if parts else _empty_scores()
    _write_csv(out / "scores.csv", scores)
    board = leaderboard(scores)
    _write_csv(out / "leaderboard.csv", board)
    _write_text(out / "leaderboard.md", leaderboard_markdown(board))
    return scores


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame(columns=list(SCORE_COLUMNS))


def _read_case_scores(case: Case) -> pd.DataFrame:
    try:
        df = pd.read_csv(case.folder / "scores.csv", dtype={"cell": str, "recording": str},
                         keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.EmptyDataError):
        df = _failed_rows(case, case.dataset.source or "", float("nan"))
    df["cell"] = df["cell"].fillna("")
    return df[list(SCORE_COLUMNS)]


# --- leaderboards -------------------------------------------------------------------------------
def leaderboard(scores: pd.DataFrame) -> pd.DataFrame:
    """Dataset x method: median of each metric across cells, with a rank per dataset by the
    median ``corr_25hz`` (1 = best; ties share the best rank; NaN last). Computed from tidy
    scores only (as written to ``scores.csv``)."""
    if scores.empty:
        return pd.DataFrame(columns=["dataset", "method", "rank", "n_cells", "n_failed"])
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
    failed = s[s["status"] != "ok"].drop_duplicates(["dataset", "recording", "method"])
    n_failed = failed.groupby(["dataset", "method"], observed=True).size()
    board = med.reset_index()
    board.columns.name = None
    idx = pd.MultiIndex.from_frame(board[["dataset", "method"]])
    board.insert(2, "n_cells", n_cells.reindex(idx, fill_value=0).to_numpy())
    board.insert(3, "n_failed", n_failed.reindex(idx, fill_value=0).to_numpy())
    key = board[RANK_METRIC] if RANK_METRIC in board else pd.Series(np.nan, index=board.index)
    rank = key.groupby(board["dataset"], observed=True).rank(
        ascending=False, method="min", na_option="bottom")
    board.insert(2, "rank", rank.astype(int))
    board = board.sort_values(["dataset", "rank", "method"], kind="stable")
    board["dataset"] = board["dataset"].astype(str)
    board["method"] = board["method"].astype(str)
    return board.reset_index(drop=True)


def leaderboard_markdown(board: pd.DataFrame, digits: int = 3) -> str:
    """The leaderboard as a GitHub markdown table."""
    cols = list(board.columns)

    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "" if not np.isfinite(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |",
             "| " + " | ".join("---" if c in ("dataset", "method") else "---:" for c in cols)
             + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in board.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def format_leaderboard(path: str | Path) -> str:
    """The markdown leaderboard of a run: ``path`` is its output folder or its ``scores.csv``
    (the leaderboard is recomputed from the scores)."""
    p = Path(path)
    scores_path = p / "scores.csv" if p.is_dir() else p
    if not scores_path.is_file():
        raise CabenchError(f"{path}: no scores.csv (run a suite into this folder first)")
    try:
        scores = pd.read_csv(scores_path, dtype={"cell": str, "recording": str})
    except (ValueError, pd.errors.EmptyDataError) as e:
        raise CabenchError(f"{scores_path}: unreadable scores: {e}") from None
    missing = sorted(set(SCORE_COLUMNS) - set(scores.columns))
    if missing:
        raise CabenchError(f"{scores_path}: not a scores file (missing {', '.join(missing)})")
    return leaderboard_markdown(leaderboard(scores))


def main() -> None:  # pragma: no cover - a quick manual run: python -m cabench.benchmark.suite
    out = sys.argv[1] if len(sys.argv) > 1 else "suite-out"
    t0 = time.perf_counter()
    run_suite(default_suite(), out, jobs=int(sys.argv[2]) if len(sys.argv) > 2 else 1,
              force=True)
    print(format_leaderboard(out))
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
