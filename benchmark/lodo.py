"""Leave-one-dataset-out (LODO) evaluation of ``cnn`` against tuned model-based methods.

For each dataset D of a CASCADE ground-truth folder, at its native condition and at the
CASCADE standard condition (30 Hz, nu = 2):

* ``cnn``: a model trained on every other selected dataset (``models/<D>/``, given, trained
  here, or merged from the fold models of several runs), run on every recording of D;
* every model-based method twice: ``<method>-default`` (its default parameters, the
  dataset's indicator where the method takes one) and ``<method>-tuned``: the variant of
  :data:`GRIDS` whose median over the *other* datasets (same condition) of the per-dataset
  median ``corr_25hz`` is highest (ties: the first label in sort order), as the CASCADE paper
  tuned its competitors. D's own scores never enter its choice (:func:`select_variants`).

Cost: one suite run of every grid variant on every dataset at both conditions (all recordings,
folder ``grid/``) serves all folds, since a fold only changes which datasets the choice is made
on; the held-out scores are read from the same cases. Nothing is subsampled, so the tuned
scores are on all recordings of D, as cnn's are. Cases are cached, so a re-run (or one with a
larger grid) only runs what is new.

Output folder: ``grid/`` and ``folds/<D>/`` (suite runs with their case folders),
``models/<D>/`` (when trained or merged here), ``table.csv`` / ``table.md`` (one row per held-out
dataset, condition and method) and ``summary.csv`` / ``summary.md`` (per condition and method:
medians across held-out datasets, wins, and whether cnn beats each method's median
``corr_25hz`` and ``corr_smoothed``: the targets of issue 4; reported, not asserted).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cabench.benchmark.suite import (
    RANK_METRIC,
    DatasetSpec,
    MethodSpec,
    Suite,
    _write_csv,
    _write_text,
    leaderboard,
    markdown_table,
    run_suite,
)
from cabench.errors import CabenchError

#: the standard condition besides the native one: (resample Hz, noise nu)
STANDARD = (30.0, 2.0)
#: metrics of the table, in column order; the choice and the rank use the first
TABLE_METRICS = ("corr_25hz", "corr_smoothed", "error", "bias")

#: Parameter grids of the model-based methods: method -> {parameter: values}; every
#: combination is one variant, besides the default variant (no parameters) that is always run.
#: An empty table runs the default only. Edit freely: cached cases are reused, new ones run.
#: ``indicator`` is left unset, so the default variants get each dataset's indicator; the
#: grid's explicit ``decay_s`` / ``rise_s`` / ``amplitude`` override the indicator's.
FULL_GRID: dict[str, dict[str, list[Any]]] = {
    # AR coefficients, baseline and noise are estimated per trace: only the refinement varies
    "oasis-ar1": {"optimize_g": [5]},
    "oasis-ar2": {"optimize_g": [5]},
    "oasis-l0": {"optimize_g": [5]},
    # rise 0 only: oasis's AR(2) solver (any rise) is 5-100x slower, and the default variant
    # already runs each indicator's own rise time
    "oasis-kernel": {"decay_s": [0.1, 0.2, 0.4, 0.8, 1.6], "rise_s": [0.0]},
    "peeling": {"decay_s": [0.1, 0.2, 0.4, 0.8, 1.6], "amplitude": [0.05, 0.1, 0.2, 0.4]},
    "wiener": {"decay_s": [0.1, 0.2, 0.4, 0.8, 1.6], "regularisation": [0.3, 1.0, 3.0]},
    "derivative": {"sigma_s": [0.02, 0.05, 0.1, 0.2]},
}
#: 1-3 points per method, for quick runs and tests
SMALL_GRID: dict[str, dict[str, list[Any]]] = {
    "oasis-ar1": {},
    "oasis-kernel": {"decay_s": [0.2, 0.8], "rise_s": [0.0]},
    "wiener": {"regularisation": [3.0]},
    "derivative": {"sigma_s": [0.05, 0.2]},
}
GRIDS = {"full": FULL_GRID, "small": SMALL_GRID}

Say = Callable[[str], None]


# --- the grid ---------------------------------------------------------------------------------
def _label(method: str, params: dict[str, Any]) -> str:
    if not params:
        return f"{method}.default"
    return method + "".join(f".{k}{'None' if v is None else f'{v:g}'}"
                            for k, v in params.items())


def grid_variants(grid: dict[str, dict[str, list[Any]]]) -> list[tuple[str, MethodSpec]]:
    """(base method, MethodSpec) of every variant of ``grid``: the default of each method
    (label ``<method>.default``), then every combination (e.g. ``wiener.decay_s0.4
    .regularisation3``)."""
    out = []
    for method, table in grid.items():
        points = [{}] + [dict(zip(table, values, strict=True))
                         for values in itertools.product(*table.values())] if table else [{}]
        for params in points:
            out.append((method, MethodSpec(method, params=params, label=_label(method, params))))
    return out


def datasets_at_conditions(folders: list[Path]) -> list[DatasetSpec]:
    """Each dataset folder natively and at the standard condition, named as in
    ``suites/ground-truth.toml`` (so the added noise is the same)."""
    rate, nu = STANDARD
    native = [DatasetSpec(name=f.name, path=str(f)) for f in folders]
    standard = [DatasetSpec(name=f"{f.name}.{rate:g}Hz-nu{nu:g}", path=str(f), resample=rate,
                            noise=nu) for f in folders]
    return native + standard


def _board(scores: pd.DataFrame, specs: list[DatasetSpec],
           base: dict[str, str] | None = None) -> pd.DataFrame:
    """The leaderboard with columns dataset (the folder name), condition, method (base
    method), variant (the suite label) and the metrics."""
    b = leaderboard(scores)
    of = {d.name: (Path(d.path).name, d.condition) for d in specs}
    b.insert(0, "condition", [of[d][1] for d in b["dataset"]])
    b["dataset"] = [of[d][0] for d in b["dataset"]]
    b = b.rename(columns={"method": "variant"})
    b.insert(2, "method", [base.get(v, v) if base else v for v in b["variant"]])
    return b


# --- the choice -------------------------------------------------------------------------------
def select_variants(board: pd.DataFrame, held_out: str, metric: str = RANK_METRIC
                    ) -> pd.DataFrame:
    """The variant of each (condition, method) chosen without ``held_out``: the highest median
    over the other datasets of ``metric`` (board columns: dataset, condition, method, variant,
    ``metric``: one row per dataset and variant, as per-dataset medians over cells). NaN scores
    are left out of the median; a variant with none ranks last; ties go to the first label in
    sort order. Returns columns condition, method, variant, training_score, n_training."""
    others = board[board["dataset"] != held_out]
    g = others.groupby(["condition", "method", "variant"], sort=True)[metric]
    scored = pd.DataFrame({"training_score": g.median(), "n_training": g.count()}).reset_index()
    key = scored["training_score"].fillna(-np.inf)
    scored = scored.assign(_key=-key).sort_values(["condition", "method", "_key", "variant"],
                                                  kind="stable")
    best = scored.drop_duplicates(["condition", "method"]).drop(columns="_key")
    return best.reset_index(drop=True)


# --- models -----------------------------------------------------------------------------------
def model_folders(models: Path, held_out: list[str]) -> dict[str, Path]:
    """``models/<D>`` for each held-out dataset D; CabenchError listing those missing."""
    folders = {d: models / d for d in held_out}
    missing = [d for d, f in folders.items() if not (f / "config.json").is_file()]
    if missing:
        raise CabenchError(
            f"{models}: no model folder for fold(s) {', '.join(missing)} (expected "
            f"{models / missing[0]}/config.json; train them with --train)")
    return folders


def merge_folds(sources: list[Path], models: Path, held_out: list[str],
                say: Say | None = None) -> dict[str, Path]:
    """For each held-out dataset D, merge ``<source>/D`` of every source into ``models/D``
    (one ensemble of all their networks, see
    :func:`~cabench.benchmark.learned.train.merge_models`). A merged folder is kept while it
    lists the same sources and is newer than all their files (so its cases stay reusable)."""
    from cabench.benchmark.learned.train import merge_models, save_model

    found = [model_folders(s, held_out) for s in sources]
    out, merged = {}, 0
    for d in held_out:
        out[d] = target = models / d
        parts = [f[d] for f in found]
        if not _merged_up_to_date(target, parts):
            model, record = merge_models(parts)
            save_model(model, target, record, force=True)
            merged += 1
    (say or (lambda _msg: None))(f"{models}: merged {merged} fold(s) from {len(sources)} "
                                  f"folders, {len(held_out) - merged} up to date")
    return out


def _merged_up_to_date(target: Path, parts: list[Path]) -> bool:
    try:
        cfg = json.loads((target / "config.json").read_text())
        listed = [m["folder"] for m in cfg["training"]["merged_from"]]
        written = min(f.stat().st_mtime_ns for f in target.iterdir() if f.is_file())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    newest = max(f.stat().st_mtime_ns for p in parts for f in p.iterdir() if f.is_file())
    return listed == [str(p) for p in parts] and newest < written


def train_folds(folders: list[Path], models: Path, recipe: Any, device: str = "auto",
                say: Say | None = None) -> dict[str, Path]:
    """Train a cnn for each dataset folder on the other folders into ``models/<name>``;
    folds whose model folder exists are kept (resume)."""
    from cabench.benchmark.learned.data import read_ground_truth
    from cabench.benchmark.learned.train import save_model, train_model

    say = say or (lambda _msg: None)
    out = {}
    for i, held in enumerate(folders):
        target = models / held.name
        out[held.name] = target
        if (target / "config.json").is_file():
            say(f"fold {i + 1}/{len(folders)} {held.name}: model exists, kept")
            continue
        sets = read_ground_truth([f for f in folders if f != held])
        say(f"fold {i + 1}/{len(folders)} {held.name}: training on {len(sets)} recordings")
        model, record, curve = train_model(sets, recipe, device=device)
        record.update(held_out=held.name, ground_truth=str(held.parent))
        save_model(model, target, record, curve, force=True)
    return out


# --- the evaluation ---------------------------------------------------------------------------
def run_lodo(
    out_dir: str | Path,
    models: dict[str, Path],
    datasets: list[Path],
    grid: dict[str, dict[str, list[Any]]] = FULL_GRID,
    jobs: int = 1,
    scheduler: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    baseline: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the grid (one suite for all folds) and each fold's cnn, write the tables; returns
    (table, summary). ``models`` maps each held-out dataset name to its model folder;
    ``progress(phase, done, total)`` is called after each case. ``baseline``: the
    ``table.csv`` of an earlier run whose model-based rows are taken instead of running the
    grid (e.g. for an ablation of the cnn recipe; the datasets must be in it)."""
    out = Path(out_dir)
    specs = datasets_at_conditions(datasets)
    variants = grid_variants(grid)
    base = {m.label: method for method, m in variants}

    def step(phase: str) -> Callable[[int, int, str, str], None]:
        return lambda done, total, _label, _status: progress and progress(phase, done, total)

    rows = []
    if baseline is None:
        scores = run_suite(Suite(specs, [m for _, m in variants], name="lodo-grid"),
                           out / "grid", jobs=jobs, scheduler=scheduler, progress=step("grid"),
                           figures=False)
        board = _board(scores, specs, base)
    else:
        rows = _baseline_rows(baseline, [d.name for d in datasets])
    for d in datasets:
        fold = [s for s in specs if Path(s.path).name == d.name]
        cnn = MethodSpec("cnn", params={"model": str(models[d.name])}, label="cnn")
        fs = run_suite(Suite(fold, [cnn], name=f"lodo-{d.name}"), out / "folds" / d.name,
                       jobs=jobs, scheduler=scheduler, progress=step(d.name), figures=False)
        own = _board(fs, fold)
        rows += [_row(r, "cnn", {"model": str(models[d.name])}) for _, r in own.iterrows()]
        if baseline is not None:
            continue
        held = board[board["dataset"] == d.name]
        chosen = select_variants(board, d.name)
        for _, c in chosen.iterrows():
            at = held[(held["condition"] == c["condition"]) & (held["method"] == c["method"])]
            for suffix, label in (("tuned", c["variant"]), ("default", f"{c['method']}.default")):
                hit = at[at["variant"] == label]
                if not hit.empty:
                    spec = next(m for _, m in variants if m.label == label)
                    rows.append(_row(hit.iloc[0], f"{c['method']}-{suffix}", spec.params,
                                     label))
    table = _rank(pd.DataFrame(rows))
    summ = summarise(table)
    _write_csv(out / "table.csv", table)
    _write_text(out / "table.md", "# Leave-one-dataset-out: per held-out dataset\n\n"
                + markdown_table(table))
    _write_csv(out / "summary.csv", summ)
    _write_text(out / "summary.md", summary_markdown(summ))
    return table, summ


def _baseline_rows(path: str | Path, held_out: list[str]) -> list[dict[str, Any]]:
    """The model-based rows of an earlier ``table.csv`` for the ``held_out`` datasets."""
    try:
        t = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise CabenchError(f"{path}: cannot read the baseline table ({e})") from None
    need = {"dataset", "condition", "method", "variant", "params", "n_cells", *TABLE_METRICS}
    if not need <= set(t.columns):
        raise CabenchError(f"{path}: not a lodo table.csv (missing columns "
                           f"{', '.join(sorted(need - set(t.columns)))})")
    missing = sorted(set(held_out) - set(t["dataset"]))
    if missing:
        raise CabenchError(f"{path}: the baseline table has no rows for {', '.join(missing)}")
    t = t[t["dataset"].isin(held_out) & (t["method"] != "cnn")]
    return t.drop(columns="rank", errors="ignore").to_dict("records")


def _row(r: pd.Series, method: str, params: dict[str, Any], variant: str = "cnn"
         ) -> dict[str, Any]:
    return dict(dataset=r["dataset"], condition=r["condition"], method=method, variant=variant,
                params=json.dumps(params, sort_keys=True), n_cells=int(r["n_cells"]),
                **{m: r.get(m, np.nan) for m in TABLE_METRICS})


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame(columns=["dataset", "condition", "method", "rank", "variant",
                                     "params", "n_cells", *TABLE_METRICS])
    rank = table.groupby(["dataset", "condition"], sort=False)[RANK_METRIC].rank(
        ascending=False, method="min", na_option="bottom")
    table.insert(3, "rank", rank.astype(int))
    return table.sort_values(["condition", "dataset", "rank", "method"],
                             kind="stable").reset_index(drop=True)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per condition and method: held-out datasets, median of each metric across them, mean
    rank, wins (rank 1, ties included) and their fraction; ``cnn_beats_<metric>``: whether
    cnn's median is above this method's (for cnn: above every other method's);
    ``cnn_better_on``: the held-out datasets on which cnn's ``corr_25hz`` is above this
    method's, the CASCADE paper's pairwise comparison (for cnn: the fewest over the others)."""
    cols = ["condition", "method", "n_datasets", *TABLE_METRICS, "mean_rank", "wins",
            "win_fraction", "cnn_beats_corr_25hz", "cnn_beats_corr_smoothed", "cnn_better_on"]
    t = table[table["n_cells"] > 0]
    if t.empty:
        return pd.DataFrame(columns=cols)
    g = t.groupby(["condition", "method"], sort=False)
    s = g[list(TABLE_METRICS)].median()
    s.insert(0, "n_datasets", g.size())
    s["mean_rank"] = g["rank"].mean()
    s["wins"] = g["rank"].apply(lambda r: int((r == 1).sum()))
    s["win_fraction"] = s["wins"] / s["n_datasets"]
    s = s.reset_index()
    for metric in ("corr_25hz", "corr_smoothed"):
        beats = []
        for _, r in s.iterrows():
            at = s[s["condition"] == r["condition"]]
            cnn = at.loc[at["method"] == "cnn", metric]
            if cnn.empty or not np.isfinite(cnn.iloc[0]):
                beats.append(None)
                continue
            rivals = at.loc[at["method"] != "cnn", metric] if r["method"] == "cnn" \
                else pd.Series([r[metric]])
            beats.append(bool((cnn.iloc[0] > rivals.fillna(-np.inf)).all()))
        s[f"cnn_beats_{metric}"] = beats
    better = _cnn_better_on(t)
    s["cnn_better_on"] = pd.array([better.get((c, m)) for c, m in
                                   zip(s["condition"], s["method"], strict=True)], "Int64")
    s = s.sort_values(["condition", "corr_25hz"], ascending=[True, False], kind="stable")
    return s.reindex(columns=cols).reset_index(drop=True)


def _cnn_better_on(t: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Per (condition, method): the datasets where cnn's corr_25hz is above the method's (NaN
    scores lose); for cnn, the fewest over the other methods. Conditions without cnn or
    without another method are left out."""
    counts: dict[tuple[str, str], int] = {}
    for cond, at in t.groupby("condition", sort=False):
        wide = at.pivot(index="dataset", columns="method", values=RANK_METRIC)
        if "cnn" not in wide or wide.shape[1] < 2:
            continue
        cnn = wide.pop("cnn").fillna(-np.inf)
        better = wide.fillna(-np.inf).lt(cnn, axis=0).sum()
        counts |= {(cond, m): int(n) for m, n in better.items()}
        counts[(cond, "cnn")] = int(better.min())
    return counts


def summary_markdown(summ: pd.DataFrame) -> str:
    """The summary as markdown with one line per condition on the issue's targets."""
    lines = ["# Leave-one-dataset-out: across held-out datasets (median of dataset medians)",
             ""]
    for cond, s in summ.groupby("condition", sort=False):
        cnn = s[s["method"] == "cnn"]
        if not cnn.empty:
            r = cnn.iloc[0]
            verdict = ", ".join(
                f"{m}: {'beats' if r[f'cnn_beats_{m}'] else 'does not beat'} every "
                "model-based method" for m in ("corr_smoothed", "corr_25hz"))
            lines.append(f"- {cond}: cnn best on {int(r['wins'])} of {int(r['n_datasets'])} "
                         f"datasets, above each model-based method on at least "
                         f"{r['cnn_better_on']}; median {verdict}")
    return "\n".join(lines) + "\n\n" + markdown_table(summ)
