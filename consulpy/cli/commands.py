"""The CLI's command table and its click glue: top-level behaviour as Consul's CLI (mitchellh/cli) has it.

Bare or unknown command → command list on stderr, exit 127; `-h` → help on stdout; `-v` → version.
`version` and `validate` live here, HTTP commands in kv, catalog, agentcmds, services. Imports: click,
stdlib, consulpy, consulpy.cli, consulpy.agent.config (imported by `validate` only when it runs).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from consulpy import BUILD_DATE, CONSUL_VERSION, __version__
from consulpy.cli import agentcmds, catalog, event, keyring, kv, members, operator, rtt, services, snapshot
from consulpy.cli.base import APP, Call, Command, Fail, Registry, emit, out
from consulpy.cli.goflags import FlagSet

REVISION = f"consulpy-{__version__}"
RPC_DEFAULT, RPC_MIN, RPC_MAX = 2, 2, 3
HELP_FLAGS = ("-h", "-help", "--help")
VERSION_FLAGS = ("-v", "-version", "--version")


def version_text() -> str:
    """`consul version`'s human-readable lines."""
    return (f"Consul v{CONSUL_VERSION}\nRevision {REVISION}\nBuild Date {BUILD_DATE}\n"
            f"Protocol {RPC_DEFAULT} spoken by default, understands {RPC_MIN} to {RPC_MAX} (agent will "
            f"automatically use protocol >{RPC_DEFAULT} when speaking to compatible agents)")


def _version_flags(flags: FlagSet) -> None:
    flags.add("format", "Output format: pretty or json.", default="pretty")


def version(call: Call) -> int:
    fmt = call.values["format"]
    if fmt == "pretty":
        out(version_text() + "\n")
    elif fmt == "json":
        info = {"Version": CONSUL_VERSION, "Revision": REVISION, "Prerelease": "", "BuildDate": BUILD_DATE,
                "RPC": {"Default": RPC_DEFAULT, "Min": RPC_MIN, "Max": RPC_MAX}}
        out(json.dumps(info, indent=3))
    else:
        raise Fail(f"Unknown format: {fmt}")
    return 0


def _validate_flags(flags: FlagSet) -> None:
    flags.add("quiet", "Print nothing when the configuration is valid.", kind="bool", default=False)


def validate(call: Call) -> int:
    from consulpy.agent.config import ConfigError, validate_paths

    if not call.args:
        raise Fail("Must specify at least one config file or directory")
    try:
        validate_paths(call.args)
    except ConfigError as exc:
        raise Fail(f"Config validation failed: {exc}") from None
    if not call.values["quiet"]:
        out("Configuration is valid!")
    return 0


REGISTRY = Registry()
REGISTRY.add(
    Command("version", "Print the Consul version", "Usage: consul version [options]", version, _version_flags),
    Command("validate", "Check configuration files or directories",
            "Usage: consul validate [options] FILE_OR_DIRECTORY...\n\n  Loads the configuration files and "
            "directories as \"consul agent\" would and\n  reports the first problem, without starting an agent. "
            "Exits 0 when the\n  configuration is valid, 1 otherwise.", validate, _validate_flags,
            repeat_flag_error=True),
    *kv.COMMANDS, *catalog.COMMANDS, *agentcmds.COMMANDS, *services.COMMANDS, *operator.COMMANDS, *snapshot.COMMANDS,
    *event.COMMANDS, *members.COMMANDS, *rtt.COMMANDS, *keyring.COMMANDS,
)


# --------------------------------------------------------------------------- click glue


class RawCommand(click.Command):
    """A click command that receives its arguments untouched (click's own parser would swallow a `--`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.params = {"args": list(args)}
        ctx.args = []
        return []


def _scan(args: list[str]) -> tuple[int | None, bool, bool, list[str]]:
    """mitchellh/cli's argument scan: (index of the command word, help asked, version asked, flags before it)."""
    index: int | None = None
    is_help = is_version = False
    top_flags: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in HELP_FLAGS:
            is_help = True
            continue
        if index is None:
            if arg in VERSION_FLAGS:
                is_version = True
                continue
            if arg.startswith("-"):
                top_flags.append(arg)
            elif arg:
                index = i
    return index, is_help, is_version, top_flags


class ConsulGroup(click.Group):
    """The `consulpy` group, answering bare, unknown, help and version invocations the way Consul's CLI does."""

    def synopsis(self, name: str) -> str:
        if name in REGISTRY.commands:
            return REGISTRY.commands[name].synopsis
        command = self.commands[name]
        return command.get_short_help_str(limit=200).rstrip(".")

    def usage(self) -> str:
        names = sorted(self.commands)
        width = max(len(name) for name in names)
        lines = [f"Usage: {APP} [--version] [--help] <command> [<args>]", "", "Available commands are:"]
        lines += [f"    {name.ljust(width)}    {self.synopsis(name)}" for name in names]
        return "\n".join(lines) + "\n\n"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        code = self._top_level(args)
        if code is not None:
            ctx.exit(code)
        return super().parse_args(ctx, args)

    def _top_level(self, args: list[str]) -> int | None:
        """Handle what mitchellh/cli decides before running a command; None lets click dispatch."""
        index, is_help, is_version, top_flags = _scan(args)
        if is_version:
            return REGISTRY.run("version", [])
        if index is None and is_help:
            emit(self.usage())
            return 0
        if index is None or args[index] not in self.commands:
            emit(self.usage(), error=True)
            return 127
        if is_help:
            emit(self.command_help(args[index], args[index + 1:]))
            return 0
        if top_flags:
            emit("Invalid flags before the subcommand. If these flags are for\nthe subcommand, please put them after "
                 "the subcommand.\n\n" + self.command_help(args[index], args[index + 1:]), error=True)
            return 1
        return None

    def command_help(self, name: str, rest: list[str]) -> str:
        """Help for the command `name` (and the subcommand words in `rest`) as `-h` shows it."""
        if name in REGISTRY.commands:
            return REGISTRY.help(REGISTRY.resolve(name, rest)[0])
        return f"Usage: {APP} {name} [options]\n\n  {self.synopsis(name)}\n"


def _click_command(name: str, passthrough: dict[str, Any]) -> click.Command:
    def run(args: list[str]) -> None:
        sys.exit(REGISTRY.run(name, args))

    return RawCommand(name, context_settings=passthrough, callback=run, help=REGISTRY.commands[name].synopsis,
                      add_help_option=False)


def register(group: click.Group, passthrough: dict[str, Any]) -> None:
    """Add every top-level command of the table to the `consulpy` group."""
    for name in REGISTRY.commands:
        if " " not in name:
            group.add_command(_click_command(name, passthrough))
