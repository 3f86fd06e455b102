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
