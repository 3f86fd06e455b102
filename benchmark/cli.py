"""Commands of the benchmark stage: methods, run-suite, infer, leaderboard, train-method, lodo,
validity and evaluate-conditional."""

from __future__ import annotations

import click

from cabench.benchmark.learned.recipe import INPUTS
from cabench.cli import CONTEXT, matrix_options, reader_options

INPUTS_OPTION = click.option(
    "--inputs", type=click.Choice(list(INPUTS)), default=None,
    help="What the networks see: raw dF/F (dff, as published), its AR(1) innovation "
         "x[t] - g x[t-1] with g estimated per trace (innovation), or both [default: dff].")


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


def _names(text):
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _noise_conditioning(noise, indicator):
    """--indicator-conditioning implies --noise-conditioning unless --per-level was given (the
    recipe then refuses the pair in one line)."""
    return True if indicator and noise is None else noise


@click.command("train-method", context_settings=CONTEXT)
@click.argument("method")
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(),
              help="Folder of dataset folders of CASCADE ground truth (.mat files).")
@click.option("--datasets", default=None, metavar="NAMES",
              help="Comma-separated dataset folder names or globs (e.g. 'DS0*,DS10-*') "
                   "[default: all].")
@click.option("--exclude", default=None, metavar="NAMES",
              help="Comma-separated dataset names or globs to leave out (e.g. for "
                   "leave-one-dataset-out).")
@click.option("--frame-rate", type=float, default=None,
              help="Model frame rate (Hz); ground truth is resampled to it [default: 30].")
@click.option("--smoothing", type=float, default=None,
              help="SD (s) of the Gaussian that smooths the target spikes [default: 0.05].")
@click.option("--noise-levels", default=None, metavar="LEVELS",
              help="Noise levels nu to train at: a range '1..9', a list '1,2,4' or both "
                   "[default: 1..9].")
@click.option("--time-scales", default=None, metavar="SCALES",
              help="Also train on the recordings played this many times faster, e.g. '1,2,3' "
                   "(augmentation for indicators faster than the training data; must include 1) "
                   "[default: 1].")
@click.option("--noise-conditioning/--per-level", default=None,
              help="One ensemble fed the noise level (FiLM) instead of one per level "
                   "[default: per level].")
@click.option("--indicator-conditioning", is_flag=True, default=None,
              help="Also feed the networks each recording's indicator family (implies "
                   "--noise-conditioning); the method then takes indicator=NAME.")
@INPUTS_OPTION
@click.option("--ensemble-size", type=click.IntRange(1), default=None,
              help="Networks per ensemble [default: 5].")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs [default: 20].")
@click.option("--max-samples", type=click.IntRange(1), default=None,
              help="Training samples per network and epoch at most [default: 5000000].")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Samples per optimiser step [default: 1024].")
@click.option("--segment", type=click.IntRange(1), default=None,
              help="Consecutive target frames per training sequence, sharing one sliding pass "
                   "(1: one window per sample, as published) [default: 32].")
@click.option("--optimizer", type=click.Choice(["adagrad", "adam"]), default=None,
              help="Optimiser [default: adagrad].")
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Learning rate [default: 0.05].")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Fraction of each dataset's recordings held out for the validation loss "
                   "[default: 0.1].")
@click.option("--seed", type=int, default=None, help="Seed of the whole run [default: 0].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where to train (auto: CUDA when available).")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Model folder to write (written under a temporary name, then renamed).")
@click.option("--force", is_flag=True, help="Replace an existing model folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages.")
def train_method(method, ground_truth, datasets, exclude, frame_rate, smoothing, noise_levels,
                 time_scales, noise_conditioning, indicator_conditioning, inputs, ensemble_size,
                 epochs, max_samples, batch_size, segment, optimizer, learning_rate,
                 val_fraction, seed, device, output, force, quiet):
    """Train METHOD (cnn) on CASCADE ground truth and write a model folder.

    The defaults are the published CASCADE recipe: 30 Hz, targets smoothed by 0.05 s, noise
    levels 1..9, 5 networks per level, 20 epochs of at most 5 M samples (Adagrad, lr 0.05),
    trained in segments of 32 frames: 45 networks, about 9 min each on 2 CPU cores;
    --noise-conditioning trains 5 (one ensemble for all levels).
    The folder holds config.json (the full recipe and training record), weights.pt and
    training_curve.csv; use it with the method's parameter model=FOLDER.

    Example (leave DS09 out): cabench train-method cnn --ground-truth ground_truth
    --exclude 'DS09-*' -o models/cnn-no-ds09
    """
    import time

    from cabench.benchmark.methods import method_class
    from cabench.cli import invocation
    from cabench.errors import CabenchError

    cls = method_class(method)
    if not getattr(cls, "trainable", False) and not cls.needs_training:
        raise CabenchError(f"method {method} cannot be trained; trainable: cnn")
    if not cls.is_installed():
        raise CabenchError(f"method {method} is not installed: {cls.install_hint}")
    from cabench.benchmark.learned.data import read_ground_truth, select_datasets
    from cabench.benchmark.learned.recipe import Recipe, parse_noise_levels, parse_time_scales

    recipe = Recipe().replace(
        frame_rate=frame_rate, smoothing_s=smoothing,
        noise_levels=parse_noise_levels(noise_levels) if noise_levels else None,
        time_scales=parse_time_scales(time_scales) if time_scales else None,
        noise_conditioning=_noise_conditioning(noise_conditioning, indicator_conditioning),
        indicator_conditioning=indicator_conditioning, inputs=inputs,
        ensemble_size=ensemble_size, epochs=epochs, max_samples=max_samples,
        batch_size=batch_size, segment=segment,
        optimizer=optimizer,
        learning_rate=learning_rate, val_fraction=val_fraction, seed=seed,
    )
    from cabench.benchmark.learned.train import check_output, save_model, train_model

    check_output(output, force)  # before hours of training
    folders = select_datasets(ground_truth, _names(datasets), _names(exclude))
    sets = read_ground_truth(folders)
    if not sets:
        raise CabenchError(f"no usable recordings in the selected datasets of {ground_truth}")
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    say(f"{len(sets)} recordings of {len(folders)} datasets; {recipe.n_networks} networks of "
        f"{recipe.n_parameters()} parameters")
    from cabench.progress import bar_callbacks, progress_bar

    t0 = time.perf_counter()
    with progress_bar(None, "train", "step", quiet) as bar:
        progress, log = bar_callbacks(bar)

        model, record, curve = train_model(sets, recipe, device=device, progress=progress,
                                           log=None if quiet else log)
    record.update(command=invocation(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  ground_truth=str(ground_truth))
    save_model(model, output, record, curve, force=force)
    if not quiet:
        last = [row for row in curve if row["epoch"] == model.recipe.epochs]
        val = [row["val_loss"] for row in last]
        click.echo(f"wrote {output}: {model.recipe.n_networks} networks, trained in "
                   f"{time.perf_counter() - t0:.0f} s; final validation loss "
                   f"{sum(val) / len(val):.4g} (mean over networks)")


def _phase_progress(bar):
    """A ``progress(phase, done, total)`` callback that drives a tqdm bar."""
    def progress(phase, done, total):
        bar.set_description(phase[:24], refresh=False)
        bar.total = total
        bar.n = done
        bar.refresh()

    return progress


@click.command("lodo", context_settings=CONTEXT)
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(),
              help="Folder of dataset folders of CASCADE ground truth (.mat files).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Output folder (grid/, folds/, models/, table.*, summary.*).")
@click.option("--models", default=None, metavar="DIRS",
              help="Folder with one cnn model folder per held-out dataset, named after it "
                   "[default with --train: OUTPUT/models]. Several, comma-separated (e.g. "
                   "runs of different --seed): each fold's networks are merged into one "
                   "ensemble in OUTPUT/models.")
@click.option("--train", is_flag=True,
              help="Train the missing fold models (existing ones are kept).")
@click.option("--datasets", default=None, metavar="NAMES",
              help="Comma-separated dataset names or globs to include [default: all].")
@click.option("--grid", "grid_name", type=click.Choice(["full", "small"]), default="full",
              help="Parameter grid of the model-based methods (cabench.benchmark.lodo).")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None, metavar="TABLE",
              help="Take the model-based rows from an earlier run's table.csv instead of "
                   "running the grid (for ablations of the cnn recipe; only cnn runs).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs [default: 20].")
@click.option("--max-samples", type=click.IntRange(1), default=None,
              help="Training samples per network and epoch at most [default: 5000000].")
@click.option("--smoothing", type=click.FloatRange(0), default=None,
              help="SD (s) of the Gaussian smoothing the spike targets [default: 0.05].")
@click.option("--noise-levels", default=None, metavar="LEVELS",
              help="Noise levels nu to train at, e.g. '1..9' or '1,2,4' [default: 1..9].")
@click.option("--time-scales", default=None, metavar="SCALES",
              help="Also train on the recordings played this many times faster, e.g. '1,2,3' "
                   "(augmentation for indicators faster than the training data; must include 1) "
                   "[default: 1].")
@click.option("--noise-conditioning/--per-level", default=None,
              help="One noise-conditioned ensemble instead of one per level "
                   "[default: per level].")
@click.option("--indicator-conditioning", is_flag=True, default=None,
              help="Also condition the fold models on the indicator family (implies "
                   "--noise-conditioning).")
@INPUTS_OPTION
@click.option("--ensemble-size", type=click.IntRange(1), default=None,
              help="Networks per ensemble [default: 5].")
@click.option("--seed", type=int, default=None, help="Seed of the training [default: 0].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where to train (auto: CUDA when available).")
@click.option("--jobs", type=click.IntRange(1), default=1, help="Parallel worker processes.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run cases on a dask.distributed cluster, e.g. tcp://host:8786.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or messages.")
def lodo(ground_truth, output, models, train, datasets, grid_name, baseline, epochs,
         max_samples, smoothing, noise_levels, time_scales, noise_conditioning,
         indicator_conditioning, inputs, ensemble_size, seed, device, jobs, scheduler, quiet):
    """Leave-one-dataset-out: cnn trained without each dataset against tuned model-based
    methods on it, natively and at 30 Hz, nu 2.

    Model-based methods: the variant of the grid that is best (median corr_25hz) on the other
    datasets, and their defaults; one grid run serves every fold. Writes table.csv/md (per
    held-out dataset) and summary.csv/md (across datasets; whether cnn beats every method's
    median corr_smoothed and corr_25hz). Finished cases and fold models are reused.
    """
    import sys
    from pathlib import Path

    from cabench.benchmark import lodo as L
    from cabench.benchmark.learned.data import select_datasets
    from cabench.errors import CabenchError
    from cabench.progress import progress_bar

    folders = select_datasets(ground_truth, _names(datasets))
    if len(folders) < 2:
        raise CabenchError("leave-one-dataset-out needs at least two datasets")
    if models is None and not train:
        raise CabenchError("give --models DIR (one model folder per dataset) or --train")
    out = Path(output)
    sources = [Path(m) for m in _names(models) or []]
    if len(sources) > 1 and train:
        raise CabenchError("--train takes at most one --models folder (merge trained runs "
                           "in a separate call)")
    model_dir = sources[0] if len(sources) == 1 else out / "models"
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    if train:
        from cabench.benchmark.learned.recipe import Recipe, parse_noise_levels, parse_time_scales

        recipe = Recipe().replace(
            noise_levels=parse_noise_levels(noise_levels) if noise_levels else None,
            time_scales=parse_time_scales(time_scales) if time_scales else None,
            noise_conditioning=_noise_conditioning(noise_conditioning, indicator_conditioning),
            indicator_conditioning=indicator_conditioning, inputs=inputs,
            ensemble_size=ensemble_size, epochs=epochs, max_samples=max_samples,
            smoothing_s=smoothing, seed=seed)
        L.train_folds(folders, model_dir, recipe, device=device, say=say)
    held_out = [f.name for f in folders]
    if len(sources) > 1:
        fold_models = L.merge_folds(sources, model_dir, held_out, say=say)
    else:
        fold_models = L.model_folders(model_dir, held_out)
    grid = L.GRIDS[grid_name]
    n = len(L.grid_variants(grid))
    say(f"{len(folders)} datasets x 2 conditions; " + (f"model-based rows from {baseline}"
        if baseline else f"{n} variants of {len(grid)} methods"))
    with progress_bar(None, "lodo", "case", quiet) as bar:
        table, summ = L.run_lodo(out, fold_models, folders, grid, jobs=jobs,
                                 scheduler=scheduler, progress=_phase_progress(bar),
                                 baseline=baseline)
    if not quiet:
        click.echo(L.summary_markdown(summ), file=sys.stdout)
        click.echo(f"tables in {out}/ (table.csv, summary.csv)")


@click.command("validity", context_settings=CONTEXT)
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(),
              help="Folder of dataset folders of CASCADE ground truth (.mat files).")
@click.option("--gan", "gan_run", type=click.Path(), default=None,
              help="Conditional-GAN run folder; without it only real vs simulated.")
@click.option("--datasets", default=None, metavar="NAMES",
              help="Comma-separated dataset names or globs to include [default: all].")
@click.option("--frame-rate", type=click.FloatRange(0, min_open=True), default=30.0,
              help="Common frame rate (Hz) the real traces are resampled to (the GAN works "
                   "at one rate).")
@click.option("--native-rate", is_flag=True,
              help="Keep each recording's own frame rate instead of --frame-rate.")
@click.option("--methods", default=None, metavar="NAMES",
              help="Comma-separated methods [default: every ready method].")
@click.option("--n-boot", type=click.IntRange(1), default=2000,
              help="Bootstrap resamples of the confidence intervals.")
@click.option("--jobs", type=click.IntRange(1), default=1, help="Parallel worker processes.")
@click.option("--seed", type=click.IntRange(0), default=0,
              help="Seed of the simulated and GAN twins and of the bootstrap.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Output folder (sources/, suite/, rankings.csv, spearman.csv, summary.md).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary.")
def validity(ground_truth, gan_run, datasets, frame_rate, native_rate, methods, n_boot, jobs,
             seed, output, quiet):
    """Do method rankings on synthetic traces predict the ranking on real ground truth?

    For each dataset: the real recordings, their simulated twin (the indicator preset driven
    by the real spikes, noise level nu matched per cell) and, with --gan, the conditional GAN's
    twin. Every method is scored on all three; methods are ranked per dataset by the median
    corr_25hz (higher better) and van Rossum distance (lower better) over cells, and Spearman's
    rho between each synthetic ranking and the real one is reported per dataset and overall
    with bootstrap intervals. Trace files and scored cases are cached and reused.
    """
    from cabench.benchmark import validity as V
    from cabench.progress import progress_bar

    with progress_bar(None, "validity", "step", quiet) as bar:
        progress = _phase_progress(bar)
        spear = V.run_study(ground_truth, output, datasets=_names(datasets),
                    frame_rate=None if native_rate else frame_rate, gan_run=gan_run,
                    methods=_names(methods), jobs=jobs, seed=seed, n_boot=n_boot,
                    progress=progress)
    if not quiet:
        for metric in V.RANK_METRICS:
            click.echo(V.finding(spear, metric))
        click.echo(f"summary.md, spearman.csv, rankings.csv and spearman.png in {output}/")


@click.command("evaluate-conditional", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path())
@click.option("--ground-truth", "ground_truth", required=True, type=click.Path(),
              help="Folder of dataset folders of CASCADE ground truth (.mat files).")
@click.option("--datasets", default=None, metavar="NAMES",
              help="Comma-separated dataset names or globs [default: those the run held out].")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Output folder (metrics.csv, summary.md, one folder per dataset).")
@click.option("--c2st/--no-c2st", "classifier", default=True,
              help="Classifier two-sample test given the spikes (ROC AUC; 0.5 = "
                   "indistinguishable).")
@click.option("--seed", type=click.IntRange(0), default=0,
              help="Seed of the twins and of the classifier test.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Device of the GAN and the classifier test.")
@click.option("-q", "--quiet", is_flag=True, help="No messages.")
def evaluate_conditional(run_dir, ground_truth, datasets, output, classifier, seed, device,
                         quiet):
    """Compare a conditional GAN run's traces and the simulator's, made for the real spikes
    of held-out ground-truth recordings, with those recordings: spike-triggered average,
    amplitudes, noise spectrum, noise level nu and a classifier test given the spikes.

    Example: cabench evaluate-conditional runs/cgan --ground-truth gt -o results/gan-conditional
    """
    from pathlib import Path

    from cabench.benchmark.gan_conditional import evaluate_run

    def log(msg):
        if not quiet:
            click.echo(msg, err=True)

    evaluate_run(run_dir, ground_truth, output, datasets=_names(datasets), seed=seed,
                 classifier=classifier, device=device, log=log)
    if not quiet:
        click.echo((Path(output) / "summary.md").read_text())


@click.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path())
@click.option("-m", "--method", required=True,
              help="Inference method (cabench methods lists them).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A method parameter, e.g. -p amplitude=0.2 (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Estimates file (HDF5) to write.")
@matrix_options
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, summary or warnings.")
def infer(path, method, params, output, frame_rate, units, layout, overwrite, quiet):
    """Infer spikes in every recording of PATH with one method; write an estimates file.

    PATH is a cabench trace file or any readable recording (CASCADE .mat or folder, dF_traces
    .mat, suite2p folder, .npy/.csv with --frame-rate). OUTPUT (HDF5) holds per recording the
    estimate (trials, cells, frames) in expected spikes per frame, the inferred spike times (s)
    and the method's warnings, with the method, its resolved parameters and this command.
    Ground-truth spikes of PATH are not copied.

    Example: cabench infer sim.h5 -m peeling -p threshold=0.5 -o estimates.h5
    """
    from cabench.benchmark.infer import infer_file, read_estimates
    from cabench.benchmark.methods.base import split_params
    from cabench.progress import bar_callbacks, progress_bar

    values = split_params(params)
    with progress_bar(None, "infer", "recording", quiet) as bar:
        progress, _ = bar_callbacks(bar)
        infer_file(path, method, values, output, frame_rate=frame_rate, overwrite=overwrite,
                   progress=progress, **reader_options(units, layout))
    if quiet:
        return
    recs = read_estimates(output)
    cells = sum(r.estimate.shape[1] for r in recs)
    seconds = sum(r.seconds for r in recs)
    click.echo(f"wrote {output}: {len(recs)} recording{'s' * (len(recs) != 1)}, {cells} cells, "
               f"method {recs[0].method}, {seconds:.3g} s")
    notes = [f"{r.name}: {w}" if len(recs) > 1 else w for r in recs for w in r.warnings]
    for w in notes[:5]:
        click.echo(f"Warning: {w}", err=True)
    if len(notes) > 5:
        click.echo(f"Warning: ... and {len(notes) - 5} more", err=True)
