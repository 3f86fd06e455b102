"""``cabench simulate`` and ``cabench presets``: options are built from the parameter table."""

from __future__ import annotations

import click

from cabench.cli import CONTEXT, invocation
from cabench.simulators.params import PARAMS, load_param_file
from cabench.simulators.presets import PRESETS

_CLICK_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING}


def _param_options(func):
    """Add one ``--name`` option per simulation parameter (default: not given)."""
    for p in reversed(PARAMS):
        flag = "--" + p.name.replace("_", "-")
        text = f"{p.help} [default: {p.default}]"
        if p.type is bool:
            opt = click.option(f"{flag}/--no-{flag[2:]}", p.name, default=None, help=text)
        else:
            ptype = click.Choice(p.choices) if p.choices else _CLICK_TYPES[p.type]
            opt = click.option(flag, p.name, type=ptype, default=None, show_default=False,
                               help=text)
        func = opt(func)
    return func


@click.command(context_settings=CONTEXT)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Trace file (HDF5) to write.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="Indicator preset (default parameters are GCaMP6f).")
@click.option("--params", "param_file", type=click.Path(dir_okay=False), default=None,
              help="TOML or JSON file of parameters; options given here override it.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--keep-calcium", is_flag=True, help="Also store the noiseless indicator dF/F.")
@click.option("--chunk-cells", type=click.IntRange(1), default=None,
              help="Cells simulated per memory chunk (default: ~256 MB of traces).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@_param_options
def simulate(output, preset, param_file, overwrite, keep_calcium, chunk_cells, quiet,
             **values):
    """Simulate spikes and calcium traces of a population into a trace file.

    Spikes (Poisson with refractory period, lognormal rates, bursts, shared latent gain,
    stimulus-locked rates or a dichotomised Gaussian with target correlations) drive an indicator
    model (double-exponential kernel with sub-frame timing, Hill saturation, drift, neuropil) and
    Gaussian or Poisson-Gaussian noise set by sigma or by the CASCADE noise level nu. The same
    seed gives an identical file. Large populations are streamed to disk chunk by chunk.

    Example: cabench simulate -o sim.h5 --preset GCaMP6s --cells 200 --duration 300 --noise 2
    """
    from cabench.progress import progress_bar
    from cabench.simulators.pipeline import Simulation

    user = load_param_file(param_file) if param_file else {}
    user.update({k: v for k, v in values.items() if v is not None})
    if preset:
        user["preset"] = preset
    sim = Simulation(user)
    with progress_bar(sim.n_cells, "simulate", "cells", quiet) as bar:
        sim.write(output, overwrite=overwrite, keep_calcium=keep_calcium,
                  chunk_cells=chunk_cells, progress=bar.update, command=invocation())
    if not quiet:
        n = sim.n_cells * sim.n_trials * sim.n_frames
        click.echo(f"wrote {output}: {sim.n_trials} trials x {sim.n_cells} cells x "
                   f"{sim.n_frames} frames ({n / 1e6:.3g} M neuron-frames), seed {sim.seed}")


@click.command(context_settings=CONTEXT)
def presets():
    """List the indicator presets with their parameters and literature sources."""
    for name, p in PRESETS.items():
        keys = ("amplitude", "decay", "rise", "hill", "saturation")
        vals = ", ".join(f"{k} {p[k]:.3g}" for k in keys)
        click.echo(f"{name:<17} {vals}  [{p['source']}]")
