"""The ``cabench`` command line: a click group whose stage commands load lazily.

Each stage defines its own commands (``cabench.simulators.cli`` etc.); this module only names
them, so ``cabench --help`` answers without importing numpy-heavy code. User mistakes
(:class:`CabenchError`) print one line and exit with status 2.
"""

from __future__ import annotations

import importlib
import shlex
import sys
import warnings

import click

from cabench import __version__
from cabench.errors import CabenchError

CONTEXT = dict(help_option_names=["-h", "--help"], show_default=True)

# name -> (module, attribute, one-line help)
LAZY_COMMANDS = {
    "simulate": ("cabench.simulators.cli", "simulate",
                 "Simulate spikes and calcium traces of a population into a trace file."),
    "presets": ("cabench.simulators.cli", "presets", "List the indicator presets."),
    "info": ("cabench.cli", "info", "Describe a trace file or recording."),
    "methods": ("cabench.benchmark.cli", "methods",
                "List the spike-inference methods and their parameters."),
    "run-suite": ("cabench.benchmark.cli", "run_suite",
                  "Run a benchmark suite and write scores and leaderboards."),
    "infer": ("cabench.benchmark.cli", "infer", "Infer spikes in a trace file with any method."),
    "leaderboard": ("cabench.benchmark.cli", "leaderboard",
                    "Print the leaderboard of a suite run."),
    "train-method": ("cabench.benchmark.cli", "train_method",
                     "Train a supervised method (cnn) on ground truth into a model folder."),
    "lodo": ("cabench.benchmark.cli", "lodo", "Leave-one-dataset-out: cnn against tuned methods."),
    "validity": ("cabench.benchmark.cli", "validity", "Real vs synthetic method rankings."),
    "evaluate-conditional": ("cabench.benchmark.cli", "evaluate_conditional",
                             "Conditional GAN and simulator vs held-out real recordings."),
    "train-gan": ("cabench.generators.cli", "train_gan",
                  "Train CalciumGAN (--conditional: on spikes)."),
    "generate": ("cabench.generators.cli", "generate",
                 "Generate traces (--spikes: for spikes)."),
    "evaluate-gan": ("cabench.generators.cli", "evaluate_gan", "Compare GAN and real traces."),
}


def invocation() -> str:
    """The command line that started this cabench command, for provenance in outputs."""
    return getattr(main, "command_line", "")


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs or shows help."""

    def list_commands(self, ctx):
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx, name):
        if name not in LAZY_COMMANDS:
            return None
        module, attr, _ = LAZY_COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, LAZY_COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args=None, **kwargs):
        args = list(sys.argv[1:] if args is None else args)
        self.command_line = shlex.join(["cabench", *args])
        return super().main(args, **kwargs)

    def invoke(self, ctx):
        def one_line(message, category, *args, **kwargs):
            click.echo(f"Warning: {message}", err=True)

        try:
            with warnings.catch_warnings():
                warnings.showwarning = one_line
                return super().invoke(ctx)
        except CabenchError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)
        except OSError as e:  # unwritable or full disk, unreadable input: no traceback
            where = f": {e.filename}" if e.filename else ""
            click.echo(f"Error: {e.strerror or e}{where}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted; no partial output was kept.", err=True)
            ctx.exit(130)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="cabench")
def main():
    """cabench: simulate, generate and benchmark spike inference from calcium imaging.

    Traces are (trials, cells, frames) dF/F as a fraction, times in seconds, frame rates in Hz,
    spike estimates in expected spikes per frame.
    """


def matrix_options(command):
    """``--frame-rate``, ``--units`` and ``--layout``: what a .npy/.csv matrix does not say."""
    command = click.option(
        "--layout", type=click.Choice(["cells_frames", "frames_cells"]), default=None,
        help="Axis order of a .npy/.csv matrix [default: cells_frames].")(command)
    command = click.option(
        "--units", type=click.Choice(["fraction", "percent"]), default=None,
        help="dF/F units of a .npy/.csv matrix [default: fraction].")(command)
    return click.option(
        "--frame-rate", type=float, default=None,
        help="Frame rate (Hz) for formats that do not store one (.npy, .csv).")(command)


def reader_options(units: str | None, layout: str | None) -> dict[str, str]:
    """The matrix options that were given, for :func:`cabench.readers.read_traces`."""
    return {k: v for k, v in (("units", units), ("layout", layout)) if v is not None}


@click.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path())
@matrix_options
@click.option("--per-cell/--summary", default=None,
              help="Print a line per cell (default: per cell up to 20 cells).")
def info(path, frame_rate, units, layout, per_cell):
    """Describe PATH: shape, frame rate, duration, source, noise level nu, firing rates.

    PATH is a cabench trace file or any readable recording (CASCADE .mat or folder, dF_traces
    .mat, suite2p folder, .npy/.csv with --frame-rate). nu is the CASCADE noise level in
    % Hz^-1/2 (about 1 is very good, 3-4 decent, above 5 poor).
    """
    from cabench.summary import describe

    for line in describe(path, frame_rate=frame_rate, per_cell=per_cell,
                         **reader_options(units, layout)):
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
