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
@click.option("--window", type=click.IntRange(1), default=2048,
              help="Frames per window (a multiple of 2^depth).")
@click.option("--epochs", type=click.IntRange(0), default=None,
              help="Passes over the training windows (stride 2) [default: 400].")
@click.option("--steps", type=click.IntRange(0), default=None,
              help="Generator steps in all (instead of --epochs).")
@click.option("--batch-size", type=click.IntRange(1), default=128, help="Windows per batch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--precision", type=click.Choice(["bf16", "fp32"]), default="bf16",
              help="bf16 autocast on CUDA; the CPU always trains in float32.")
@click.option("--seed", type=int, default=0, help="Seed of weights, batches and noise.")
@click.option("--resume", is_flag=True,
              help="Continue the run in the output folder from its checkpoint.")
@click.option("--log-every", type=click.IntRange(1), default=50,
              help="Write losses to log.csv every N generator steps.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=500,
              help="Save a checkpoint every N generator steps (and at the end).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              help="Held-out block at the end of each recording.")
@click.option("--scaling", type=click.Choice(["global", "per_cell"]), default="global",
              help="Min/max scaling to [0, 1] of all values at once or of each cell.")
@click.option("--latent", type=click.IntRange(1), default=None, help="Latent size [32].")
@click.option("--gen-channels", default=None, metavar="C1,C2,..",
              help="Generator widths before the last layer [320,256,192,128].")
@click.option("--critic-channels", default=None, metavar="C1,C2,..",
              help="Critic widths [64,128,192,256,320].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages.")
def train_gan(data, run_dir, window, epochs, steps, batch_size, device, precision, seed, resume,
              log_every, checkpoint_every, val_fraction, scaling, latent, gen_channels,
              critic_channels, quiet):
    """Train CalciumGAN (WGAN-GP) on windows of all cells of the DATA trace files.

    Windows of --window frames at stride 2; the last --val-fraction of each recording is held
    out for validation. Values are min/max scaled to [0, 1] (stored with the run); NaN in the
    data is refused. Adam lr 1e-4, betas (0.5, 0.9), 5 critic steps per generator step,
    gradient penalty 10. Run with torchrun for several GPUs; --resume continues a stopped run
    exactly (model and training settings come from the run folder).

    Example: cabench train-gan rec.h5 -o runs/gan --window 2048 --epochs 400
    """
    import time

    from cabench.cli import invocation
    from cabench.generators.gan_train import train_gan as train
    from cabench.progress import bar_callbacks, progress_bar

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
@click.option("--samples", type=click.IntRange(1), required=True,
              help="Generated windows (written as trials).")
@click.option("--seed", type=int, default=0, help="Seed of the latent vectors.")
@click.option("--batch-size", type=click.IntRange(1), default=64)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("-q", "--quiet", is_flag=True)
def generate(run_dir, output, samples, seed, batch_size, device, overwrite, quiet):
    """Generate traces from the latest checkpoint of a train-gan RUN_DIR into a trace file.

    The file holds (samples, cells, window) float32 dF/F (scaling inverted), source gan, the
    training data's frame rate and cell names, and the run folder, step, seed and config in
    its params.
    """
    from cabench.cli import invocation
    from cabench.generators.gan_train import generate as gen

    gen(run_dir, output, samples, seed=seed, batch_size=batch_size, device=device,
        overwrite=overwrite, command=invocation())
    if not quiet:
        click.echo(f"wrote {output}: {samples} generated windows")


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
