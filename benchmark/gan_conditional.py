"""Evaluation of a spike-conditioned GAN run on ground-truth datasets it did not train on.

For each held-out dataset (by default the run's own validation datasets, recorded in its
``config.json``), every recording is resampled to the run's frame rate and gets two twins made
for its real spikes: the GAN's (:func:`cabench.generators.conditional_train.generate_traces`,
at the recording's median noise level nu) and the simulator's (the dataset's indicator preset,
nu matched per cell; :func:`cabench.simulators.from_spikes.traces_from_spikes`); twins of a
recording resampled up from a lower native rate are band-limited to its native bandwidth, with
its native nu. The twins are built and cached exactly as for the validity study
(:func:`cabench.benchmark.validity.build_sources`).
:func:`cabench.generators.conditional_eval.evaluate_conditional` then compares both with
the real recordings of each dataset (spike-triggered average, amplitudes, noise spectrum, nu,
classifier test given the spikes).

Output folder: ``sources/`` (the trace files), ``<dataset>/`` (that dataset's metrics.csv,
sta.csv, psd.csv and figures), ``metrics.csv`` (all datasets, with a ``dataset`` column) and
``summary.md`` (the headline statistics of each candidate per dataset).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from cabench.errors import CabenchError

#: headline statistics of summary.md (see cabench.generators.conditional_eval)
HEADLINE = ("c2st_auc", "sta_rmse_dff", "sta_correlation", "amplitude_wasserstein_dff",
            "psd_log_rmse", "nu_rel_error")


def held_out_datasets(run_dir: str | Path) -> tuple[list[str], float]:
    """The datasets a conditional run held out of training, and its frame rate (Hz)."""
    from cabench.generators.conditional_train import run_kind
    from cabench.generators.gan_train import read_config

    if run_kind(run_dir) != "conditional":
        raise CabenchError(f"{run_dir} is an unconditional GAN run; the evaluation given "
                           "spikes needs a conditional one (cabench train-gan --conditional)")
    data = read_config(run_dir)["data"]
    return list(data.get("val_datasets") or []), float(data["frame_rate"])


def evaluate_run(
    run_dir: str | Path,
    ground_truth: str | Path,
    output: str | Path,
    datasets: list[str] | None = None,
    seed: int = 0,
    classifier: bool = True,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Compare the GAN's and the simulator's twins with the real recordings of ``datasets``
    (names or globs; default: those the run held out) in the CASCADE folder ``ground_truth``;
    returns all metrics (conditional_eval's columns plus ``dataset``) and writes ``output``."""
    from cabench.benchmark.learned.data import select_datasets
    from cabench.benchmark.suite import _write_csv, _write_text
    from cabench.benchmark.validity import build_sources
    from cabench.generators.conditional_eval import evaluate_conditional
    from cabench.traceset import TraceSet

    say = log or (lambda _msg: None)
    held, rate = held_out_datasets(run_dir)
    names = datasets or held
    if not names:
        raise CabenchError(f"{run_dir} held out no datasets; name some with --datasets")
    folders = select_datasets(ground_truth, names)
    trained = set(names) - set(held) if datasets else set()
    if trained:
        say(f"note: {', '.join(sorted(trained))} not held out by the run (its training data)")
    out = Path(output)
    index, _ = build_sources(folders, out / "sources", frame_rate=rate, gan_run=run_dir,
                             seed=seed)
    tables = []
    for name, rows in index.groupby("dataset", sort=True):
        by_source = {s: r.sort_values("recording") for s, r in rows.groupby("source")}
        real = by_source.pop("real")
        candidates = {}
        for source, r in by_source.items():
            if list(r["recording"]) == list(real["recording"]):
                candidates[source] = [TraceSet.load(p) for p in r["path"]]
        say(f"{name}: {len(real)} recordings, candidates {', '.join(sorted(candidates))}")
        table = evaluate_conditional([TraceSet.load(p) for p in real["path"]], candidates,
                                     out / name, seed=seed, classifier=classifier,
                                     device=device, log=say)
        tables.append(table.assign(dataset=name))
    metrics = pd.concat(tables, ignore_index=True)
    _write_csv(out / "metrics.csv", metrics)
    _write_text(out / "summary.md", summary_markdown(metrics, run_dir))
    return metrics


def summary_markdown(metrics: pd.DataFrame, run_dir: Any) -> str:
    """The headline statistics per dataset and candidate as a markdown table."""
    from cabench.benchmark.suite import markdown_table

    head = metrics[metrics["statistic"].isin(HEADLINE) & (metrics["candidate"] != "real")]
    table = head.pivot_table(index=["dataset", "candidate"], columns="statistic",
                             values="value", sort=True)
    table = table[[c for c in HEADLINE if c in table.columns]].reset_index()
    return (f"# Conditional GAN {run_dir} against held-out real recordings\n\n"
            "Same spikes for every candidate; c2st_auc 0.5 = indistinguishable from real given "
            "the spikes; the other columns are distances to the real recordings (0 = same).\n\n"
            + markdown_table(table))
