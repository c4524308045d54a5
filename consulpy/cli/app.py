"""The `consulpy` command group: click dispatches subcommands, which parse Go-style flags like Consul's CLI.

Imports: click, consulpy.cli, consulpy.agent.run (for `agent`).
"""

from __future__ import annotations

import sys

import click

from consulpy.cli import commands

PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.group(cls=commands.ConsulGroup, context_settings={"help_option_names": ["-h", "-help", "--help"]})
def cli() -> None:
    """consulpy: a Consul-compatible agent."""


@cli.command(context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def agent(args: tuple[str, ...]) -> None:
    """Runs a Consul agent."""
    from consulpy.agent.run import run_agent

    sys.exit(run_agent(list(args)))


commands.register(cli, PASSTHROUGH)
