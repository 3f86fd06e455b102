"""Commands of the benchmark stage: ``cabench methods``."""

from __future__ import annotations

import click

from cabench.cli import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option("--brief", is_flag=True, help="One line per method, without parameters.")
def methods(names, brief):
    """List the spike-inference methods (installed or not) with their parameters.

    Every method outputs expected spikes per frame. Give NAMES to show only those methods.
    """
    from cabench.benchmark.methods import describe_methods, method_class

    for name in names:
        method_class(name)  # unknown names: one-line error listing the valid ones
    for row in describe_methods():
        if names and row["name"] not in names:
            continue
        state = f"installed, {row['version']}" if row["installed"] else \
            f"NOT installed: {row['install_hint']}"
        click.echo(f"{row['name']:<13} {row['description']} [{state}]")
        if brief:
            continue
        for p in row["params"]:
            unit = f" ({p['unit']})" if p["unit"] else ""
            click.echo(f"    {p['name']:<13} default {p['default']!s:<8} {p['range']:<16} "
                       f"{p['description']}{unit}")


@click.command("run-suite", context_settings=CONTEXT)
@click.argument("suite_file", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: results/<suite name>].")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Folder that relative dataset paths are resolved against (before the suite's).")
@click.option("--jobs", type=click.IntRange(1), default=1, help="Parallel worker processes.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run cases on a dask.distributed cluster, e.g. tcp://host:8786 (needs "
                   "pip install 'cabench[dask]'; workers must see the data and output paths).")
@click.option("--figures/--no-figures", default=True, show_default=True,
              help="Write figures (box plots, noise dependence, example traces).")
@click.option("--force", is_flag=True, help="Re-run cases that are already done.")
@click.option("--rerun-failed", is_flag=True, help="Re-run cases that failed before.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or leaderboard.")
def run_suite(suite_file, output, data_root, jobs, scheduler, figures, force, rerun_failed,
              quiet):
    """Run a benchmark suite (TOML) and write scores and leaderboards.

    Without SUITE_FILE runs the built-in suite: simulated GCaMP6f, GCaMP6s and jGCaMP8f data at
    noise levels nu 2 and 6 with every installed method (seconds on 2 cores). Each (dataset,
    recording, method) case has its own folder with params, log and outputs; finished cases are
    reused. Writes scores.csv (tidy), leaderboard.csv, leaderboard.md, excluded.csv (cells
    noisier than a dataset's target noise level) and figures/.
    """
    from pathlib import Path

    from cabench.benchmark import suite as S
    from cabench.progress import progress_bar

    suite = S.load_suite(suite_file, data_root) if suite_file else S.default_suite()
    out = Path(output) if output else Path("results") / suite.name
    with progress_bar(None, "cases", "case", quiet) as bar:
        def progress(done, total, label, status):
            bar.total = total
            bar.update(1)

        S.run_suite(suite, out, jobs=jobs, force=force, rerun_failed=rerun_failed,
                    progress=progress, scheduler=scheduler, figures=figures)
    if not quiet:
        click.echo(S.format_leaderboard(out))
        click.echo(f"\nscores, leaderboards and case folders in {out}/")


@click.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path())
def leaderboard(path):
    """Print the leaderboard of a suite run (its folder or its scores.csv) as a table."""
    from cabench.benchmark.suite import format_leaderboard

    click.echo(format_leaderboard(path))
