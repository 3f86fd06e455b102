"""Command line of the generators: ``cabench train-gan``, ``cabench generate`` and
``cabench evaluate-gan``."""

from __future__ import annotations

import os

import click

CONTEXT = dict(help_option_names=["-h", "--help"], show_default=True)


def _init_distributed(device: str) -> bool:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return True


@click.command("train-gan", context_settings=CONTEXT)
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(),
              help="Run folder (config.json, checkpoint.pt, log.csv).")
@click.option("--conditional", is_flag=True,
              help="Train the spike-conditioned GAN on ground truth (DATA: CASCADE dataset "
                   "folders, or a folder of them).")
@click.option("--window", type=click.IntRange(1), default=None,
              help="Frames per window [2048, a multiple of 2^depth; conditional: 512].")
@click.option("--epochs", type=click.IntRange(0), default=None,
              help="Passes over the training windows [default: 400; conditional: --steps "
                   "20000].")
@click.option("--steps", type=click.IntRange(0), default=None,
              help="Generator steps in all (instead of --epochs).")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Windows per batch [128; conditional: 32].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--precision", type=click.Choice(["bf16", "fp32"]), default="bf16",
              help="bf16 autocast on CUDA; the CPU always trains in float32 (unconditional).")
@click.option("--seed", type=int, default=0, help="Seed of weights, batches and noise.")
@click.option("--resume", is_flag=True,
              help="Continue the run in the output folder from its checkpoint.")
@click.option("--log-every", type=click.IntRange(1), default=50,
              help="Write losses to log.csv every N generator steps.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500,
              help="Save a checkpoint every N generator steps (and at the end).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              help="Held-out block at the end of each recording (unconditional).")
@click.option("--scaling", type=click.Choice(["global", "per_cell"]), default="global",
              help="Min/max scaling to [0, 1] of all values at once or of each cell "
                   "(unconditional).")
@click.option("--latent", type=click.IntRange(0), default=None,
              help="Latent size [32; conditional: 8 per trace].")
@click.option("--gen-channels", default=None, metavar="C1,C2,..",
              help="Generator widths before the last layer [320,256,192,128] (unconditional).")
@click.option("--critic-channels", default=None, metavar="C1,C2,..",
              help="Critic widths [64,128,192,256,320; conditional: 32,64,64,128,128,128,128].")
@click.option("--frame-rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Conditional: common frame rate (Hz) the ground truth is resampled to "
                   "[30].")
@click.option("--val-datasets", default=None, metavar="NAME,GLOB,..",
              help="Conditional: datasets held out for validation [DS02-*,DS11-*,DS16-*].")
@click.option("--channels", type=click.IntRange(1), default=None,
              help="Conditional: generator width [64].")
@click.option("--dilations", default=None, metavar="D1,D2,..",
              help="Conditional: dilations of the generator's residual blocks "
                   "[1,2,4,8,16,32,64,128].")
@click.option("--init-from", type=click.Path(), default=None, metavar="RUN",
              help="Conditional: start a new run from the weights of RUN (fine tuning with "
                   "other settings or data; RUN's architecture, frame rate and trace scale).")
@click.option("--recon-weight", type=click.FloatRange(0), default=None,
              help="Conditional: weight of the reconstruction term (Huber loss of the real "
                   "trace around the generated signal, in noise SDs) in the generator loss "
                   "[0: none].")
@click.option("--nu-weight", type=click.FloatRange(0), default=None,
              help="Conditional: weight of the noise-level term (squared log ratio of each "
                   "generated window's nu to the real window's) in the generator loss "
                   "[0: none].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages.")
@click.pass_context
def train_gan(ctx, data, run_dir, conditional, window, epochs, steps, batch_size, device,
              precision, seed, resume, log_every, checkpoint_every, val_fraction, scaling,
              latent, gen_channels, critic_channels, frame_rate, val_datasets, channels,
              dilations, init_from, recon_weight, nu_weight, quiet):
    """Train CalciumGAN (WGAN-GP) on windows of all cells of the DATA trace files.

    Windows of --window frames at stride 2; the last --val-fraction of each recording is held
    out for validation. Values are min/max scaled to [0, 1] (stored with the run); NaN in the
    data is refused. Adam lr 1e-4, betas (0.5, 0.9), 5 critic steps per generator step,
    gradient penalty 10. Run with torchrun for several GPUs; --resume continues a stopped run
    exactly (model and training settings come from the run folder).

    With --conditional: a spike-conditioned GAN (spikes per frame, indicator and noise level
    nu in, dF/F out) trained on (spikes, trace) windows of CASCADE ground truth resampled to
    --frame-rate; NaN-free windows only; whole datasets (--val-datasets) held out.
    Defaults: 30 Hz, window 512 frames, batch 32, 20000 steps, float32, one process (on a
    busy CPU set OMP_NUM_THREADS=1). Then: cabench generate RUN --spikes SPIKES.h5 -o out.h5

    Example: cabench train-gan rec.h5 -o runs/gan --window 2048 --epochs 400

    Example: cabench train-gan --conditional ground_truth -o runs/cgan --steps 2000
    """
    from cabench.errors import CabenchError

    if resume and not conditional:
        from cabench.generators.conditional_train import run_kind

        conditional = run_kind(run_dir) == "conditional"
    only = (("val_fraction", "precision", "scaling", "gen_channels") if conditional else
            ("frame_rate", "val_datasets", "channels", "dilations", "init_from",
             "recon_weight", "nu_weight"))
    given = [n for n in only
             if ctx.get_parameter_source(n) != click.core.ParameterSource.DEFAULT]
    if given:
        names = ", ".join("--" + n.replace("_", "-") for n in given)
        raise CabenchError(f"{names} do(es) not apply to "
                           f"{'a conditional' if conditional else 'an unconditional'} GAN"
                           + ("" if conditional else "; add --conditional"))
    if conditional:
        return _train_conditional(data, run_dir, window, epochs, steps, batch_size, device,
                                  seed, resume, log_every, checkpoint_every, latent,
                                  critic_channels, frame_rate, val_datasets, channels,
                                  dilations, init_from, recon_weight, nu_weight, quiet)
    import time

    from cabench.cli import invocation
    from cabench.generators.gan_train import train_gan as train
    from cabench.progress import bar_callbacks, progress_bar

    window = 2048 if window is None else window
    batch_size = 128 if batch_size is None else batch_size
    distributed = _init_distributed(device)
    rank = int(os.environ.get("RANK", "0")) if distributed else 0
    quiet = quiet or rank != 0
    gan = dict(latent=latent, gen_channels=_ints(gen_channels),
               critic_channels=_ints(critic_channels))
    tc = dict(batch_size=batch_size, seed=seed, log_every=log_every,
              checkpoint_every=checkpoint_every, precision=precision,
              val_fraction=val_fraction, scaling=scaling)
    t0 = time.perf_counter()
    try:
        with progress_bar(None, "train-gan", "step", quiet) as bar:
            progress, log = bar_callbacks(bar)

            trainer = train(list(data), run_dir, window=window, steps=steps, epochs=epochs,
                            resume=resume, device=device,
                            gan_overrides={k: v for k, v in gan.items() if v is not None},
                            train_overrides=tc, progress=progress,
                            log=None if quiet else log, command=invocation())
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    if not quiet:
        click.echo(f"{run_dir}: {trainer.step} generator steps, "
                   f"{time.perf_counter() - t0:.1f} s")


def _train_conditional(data, run_dir, window, epochs, steps, batch_size, device, seed, resume,
                       log_every, checkpoint_every, latent, critic_channels, frame_rate,
                       val_datasets, channels, dilations, init_from, recon_weight, nu_weight,
                       quiet):
    import time

    from cabench.cli import invocation
    from cabench.generators.conditional_train import train_conditional
    from cabench.progress import bar_callbacks, progress_bar

    model = dict(latent=latent, critic_channels=_ints(critic_channels), channels=channels,
                 dilations=_ints(dilations))
    tc = dict(batch_size=batch_size, window=window, frame_rate=frame_rate, seed=seed,
              recon_weight=recon_weight, nu_weight=nu_weight, log_every=log_every,
              checkpoint_every=checkpoint_every,
              val_datasets=None if val_datasets is None else
              [v.strip() for v in val_datasets.split(",") if v.strip()])
    t0 = time.perf_counter()
    with progress_bar(None, "train-gan", "step", quiet) as bar:
        progress, log = bar_callbacks(bar)
        trainer = train_conditional(
            list(data), run_dir, steps=steps, epochs=epochs, resume=resume,
            init_from=init_from, device=device,
            model_overrides={k: v for k, v in model.items() if v is not None},
            train_overrides={k: v for k, v in tc.items()
                             if v is not None or k == "val_datasets"},
            progress=progress, log=None if quiet else log, command=invocation())
    if not quiet:
        click.echo(f"{run_dir}: {trainer.step} generator steps (conditional), "
                   f"{time.perf_counter() - t0:.1f} s")


def _ints(text):
    if text is None:
        return None
    from cabench.errors import CabenchError

    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise CabenchError(f"expected comma-separated integers, got {text!r}") from None


@click.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Trace file to write (HDF5).")
@click.option("--samples", type=click.IntRange(1), default=None,
              help="Unconditional run: generated windows (written as trials).")
@click.option("--spikes", "spikes_path", type=click.Path(dir_okay=False), default=None,
              help="Conditional run: trace file whose spikes drive the generator (e.g. from "
                   "cabench simulate, at the model's frame rate).")
@click.option("--indicator", default=None,
              help="Conditional run: indicator name [the spike file's if the model knows it, "
                   "else unknown].")
@click.option("--noise-level", type=float, default=None,
              help="Conditional run: noise level nu (% Hz^-1/2) [median of the training "
                   "data].")
@click.option("--bandwidth", type=float, default=None, metavar="HZ",
              help="Conditional run: remove every frequency above HZ, for traces like a "
                   "recording made at 2 x HZ and resampled up (give its nu at that rate) "
                   "[full band].")
@click.option("--seed", type=int, default=0, help="Seed of the latent vectors and noise.")
@click.option("--batch-size", type=click.IntRange(1), default=64)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("-q", "--quiet", is_flag=True)
def generate(run_dir, output, samples, spikes_path, indicator, noise_level, bandwidth, seed,
             batch_size, device, overwrite, quiet):
    """Generate traces from the latest checkpoint of a train-gan RUN_DIR into a trace file.

    Unconditional run (--samples N): the file holds (samples, cells, window) float32 dF/F
    (scaling inverted), source gan, the training data's frame rate and cell names, and the run
    folder, step, seed and config in its params.

    Conditional run (--spikes SPIKES.h5): one trace per (trial, cell) of the spike file, same
    frames; the file carries the given spikes as ground truth, source gan, and the run, step,
    seed, indicator, noise level and bandwidth in its params.

    Example: cabench generate runs/cgan --spikes sim.h5 -o gan.h5 --noise-level 2
    """
    from cabench.cli import invocation
    from cabench.errors import CabenchError
    from cabench.generators.conditional_train import run_kind

    kind = run_kind(run_dir)
    if kind == "conditional" and os.path.exists(output) and not overwrite:
        raise CabenchError(f"{output} exists; pass --overwrite to replace it")
    if kind == "unconditional":
        extra = [n for n, v in (("--spikes", spikes_path), ("--indicator", indicator),
                                ("--noise-level", noise_level), ("--bandwidth", bandwidth))
                 if v is not None]
        if extra:
            raise CabenchError(f"{run_dir} is an unconditional GAN run: {', '.join(extra)} "
                               "need(s) a conditional run (train-gan --conditional)")
        if samples is None:
            raise CabenchError("give --samples N for an unconditional GAN run")
        from cabench.generators.gan_train import generate as gen

        gen(run_dir, output, samples, seed=seed, batch_size=batch_size, device=device,
            overwrite=overwrite, command=invocation())
        if not quiet:
            click.echo(f"wrote {output}: {samples} generated windows")
        return
    if spikes_path is None or samples is not None:
        raise CabenchError(f"{run_dir} is a conditional GAN run: give --spikes SPIKES.h5 "
                           "(a trace file with spikes) instead of --samples")
    import dataclasses

    from cabench.generators.conditional_train import generate_traces
    from cabench.readers import read_traces

    sets = read_traces(spikes_path)
    if len(sets) != 1:
        raise CabenchError(f"{spikes_path}: holds {len(sets)} recordings; give one trace file")
    out = generate_traces(run_dir, sets[0], seed=seed, batch_size=batch_size, device=device,
                          indicator=indicator, noise_level=noise_level,
                          bandwidth_hz=bandwidth)
    out = dataclasses.replace(out, command=invocation())
    out.save(output, overwrite=overwrite)
    if not quiet:
        click.echo(f"wrote {output}: {out.n_trials} x {out.n_cells} traces of {out.n_frames} "
                   f"frames (indicator {out.params['indicator']}, nu "
                   f"{out.params['noise_level_nu']:.3g})")


@click.command("evaluate-gan", context_settings=CONTEXT)
@click.option("--real", "real", required=True, type=click.Path(),
              help="Real trace file (one long trial is cut into windows).")
@click.option("--fake", "fake", required=True, type=click.Path(),
              help="Generated trace file (cabench generate).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder for comparison.csv and figures/.")
@click.option("--method", default="oasis-ar1", help="Spike-inference method (cabench methods).")
@click.option("--method-params", default=None, metavar="JSON",
              help="Parameters of the method as a JSON object.")
@click.option("--truth/--no-truth", default=None,
              help="Also compare with the real file's ground-truth spikes [default: when present].")
@click.option("--c2st/--no-c2st", "classifier", default=True,
              help="Classifier two-sample test (ROC AUC; 0.5 = indistinguishable).")
@click.option("--seed", type=int, default=0, help="Seed of the classifier test.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Device of the classifier test.")
@click.option("-q", "--quiet", is_flag=True, help="No messages.")
def evaluate_gan(real, fake, output, method, method_params, truth, classifier, seed, device,
                 quiet):
    """Compare generated traces with real ones (CalciumGAN's evaluation).

    Both files are cut into windows of the generated file's length; spikes are inferred per
    window with --method; firing rates, pairwise correlations (0.5 s bins) and pairwise van
    Rossum distances (tau 1 s) are compared by KL(real || generated) of 30-bin histograms and
    the Wasserstein distance, also against ground-truth spikes when the real file has them.
    A small classifier trained to tell real from generated windows gives a test ROC AUC.
    Writes OUTPUT/comparison.csv and OUTPUT/figures/.

    Example: cabench evaluate-gan --real rec.h5 --fake gan.h5 -o eval
    """
    import sys

    from cabench.generators.evaluate import evaluate_gan as run

    def log(msg):
        click.echo(msg, err=True)

    df = run(real, fake, output, method=method, method_params=method_params, truth=truth,
             classifier=classifier, seed=seed, device=device, log=None if quiet else log)
    if not quiet:
        cols = ["statistic", "reference", "compared", "kl", "wasserstein", "value", "accuracy"]
        click.echo(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        click.echo(f"wrote {output}/comparison.csv and {output}/figures/", file=sys.stdout)
