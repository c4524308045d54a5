"""What every CLI command shares: the command table, help, output, Go's flag and table formats.

As in Consul (mitchellh/cli): a parent command alone → its help on stderr, exit 1; a bad flag → Go's error
and flag list on stderr, exit 1. Tables as ryanuber/columnize and text/tabwriter lay them out.
Imports: stdlib, consulpy.cli.goflags, consulpy.cli.http.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consulpy.cli.goflags import Flag, FlagError, FlagSet
from consulpy.cli.http import ApiError, Client, add_client_flags, add_server_flags, client_from_flags

APP = "consul"


class Fail(Exception):
    """Stops a command: `message` goes to stderr and the process exits with status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- output


def _encode(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def emit(text: str | bytes, error: bool = False) -> None:
    """Write `text` as is to stdout, or to stderr after flushing stdout so the two keep their order."""
    sys.stdout.buffer.flush()
    stream = sys.stderr.buffer if error else sys.stdout.buffer
    stream.write(_encode(text))
    stream.flush()


def out(text: str | bytes = "") -> None:
    """One line on stdout (Consul's UI.Output/UI.Info)."""
    sys.stdout.buffer.write(_encode(text) + b"\n")


def err(text: str | bytes) -> None:
    """One line on stderr (Consul's UI.Error)."""
    emit(_encode(text) + b"\n", error=True)


def columnize(rows: Sequence[Sequence[str]]) -> str:
    """ryanuber/columnize with Consul's settings: left-aligned columns joined by two spaces."""
    cells = [[cell.strip() for cell in row] for row in rows]
    widths: list[int] = []
    for row in cells:
        for i, cell in enumerate(row):
            if i >= len(widths):
                widths.append(len(cell))
            else:
                widths[i] = max(widths[i], len(cell))
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) + "  " for i, cell in enumerate(row[:-1])]
        lines.append("".join(padded) + (row[-1] if row else ""))
    return "\n".join(lines)


def tabwrite(text: str, padding: int = 6) -> str:
    """Go's text/tabwriter (minwidth 0, pad with spaces): tab-terminated cells of adjacent lines align."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * len(cells) for cells in lines]

    def layout(column: int, start: int, end: int) -> None:
        i = start
        while i < end:
            if len(lines[i]) - 1 <= column:
                i += 1
                continue
            j = i
            while j < end and len(lines[j]) - 1 > column:
                j += 1
            width = max(len(lines[k][column]) for k in range(i, j)) + padding
            for k in range(i, j):
                widths[k][column] = width
            layout(column + 1, i, j)
            i = j

    layout(0, 0, len(lines))
    return "\n".join("".join(cell.ljust(widths[n][c]) for c, cell in enumerate(cells[:-1])) + cells[-1]
                     for n, cells in enumerate(lines))


# --------------------------------------------------------------------------- Go number and text formats


def _go_integer(text: str, signed: bool, bits: int) -> int:
    body = text
    negative = False
    if signed and body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    if not re.fullmatch(r"0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|0[0-7_]*|[1-9][0-9_]*", body) \
            or "__" in body or body.endswith("_"):
        raise ValueError("parse error")
    digits = body.replace("_", "")
    value = int(digits, 8) if re.fullmatch(r"0[0-7]+", digits) else int(digits, 0)
    value = -value if negative else value
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise ValueError("value out of range")
    return value


def go_int(text: str) -> int:
    """A Go `int` flag value (strconv.ParseInt base 0, 64 bits), with the flag package's error words."""
    return _go_integer(text, True, 64)


def go_uint(text: str) -> int:
    """A Go `uint64` flag value (strconv.ParseUint base 0)."""
    return _go_integer(text, False, 64)


def key_value(text: str) -> tuple[str, str]:
    """Consul's FlagMapValue: `key=value`."""
    if "=" not in text:
        raise ValueError(f'Missing "=" value in argument: {text}')
    key, value = text.split("=", 1)
    return key, value


def go_quote(text: str) -> str:
    """Go's %q for the printable text that flag defaults hold."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_os_error(op: str, path: str, exc: OSError) -> str:
    """An *os.PathError's text, e.g. `open x: no such file or directory`."""
    reason = exc.strerror or str(exc)
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def read_data_arg(text: str) -> bytes:
    """Consul's data argument: `@file` reads the file, `-` reads stdin, anything else is the data itself."""
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except IsADirectoryError as exc:
            raise Fail(f"Error! Failed to read file: {go_os_error('read', path, exc)}") from None
        except OSError as exc:
            raise Fail(f"Error! Failed to read file: {go_os_error('open', path, exc)}") from None
    if text == "-":
        return sys.stdin.buffer.read()
    return os.fsencode(text)


# --------------------------------------------------------------------------- flags


_EXAMPLE = re.compile(r"`([^`]*)`")
HTTP_FLAG_NAMES = frozenset({"http-addr", "token", "token-file", "ca-file", "ca-path", "client-cert", "client-key",
                             "tls-server-name", "datacenter", "stale"})


def _example(flag: Flag) -> tuple[str, str]:
    """Go's flag.UnquoteUsage: the placeholder name for a flag's value and its usage without backquotes."""
    match = _EXAMPLE.search(flag.usage)
    if match:
        return match.group(1), flag.usage[:match.start()] + match.group(1) + flag.usage[match.end():]
    if flag.kind == "bool":
        return "", flag.usage
    if flag.kind == "int":
        return ("uint" if flag.convert is go_uint else "int"), flag.usage
    if flag.kind == "list" or flag.name in HTTP_FLAG_NAMES:
        return "value", flag.usage
    return "string", flag.usage


def print_defaults(flags: FlagSet) -> str:
    """Go's FlagSet.PrintDefaults, shown after a flag error."""
    lines = []
    for flag in sorted(flags.flags, key=lambda f: f.name):
        name, usage = _example(flag)
        head = f"  -{flag.name}" + (f" {name}" if name else "")
        text = head + ("\t" if len(head) <= 4 else "\n    \t") + usage.replace("\n", "\n    \t")
        if flag.kind == "string" and flag.default:
            text += f" (default {go_quote(flag.default)})"
        elif flag.kind == "int" and flag.default:
            text += f" (default {flag.default})"
        lines.append(text + "\n")
    return "".join(lines)


def flag_block(title: str, flags: Iterable[Flag]) -> str:
    text = f"{title}\n\n"
    for flag in sorted(flags, key=lambda f: f.name):
        name, usage = _example(flag)
        text += f"  -{flag.name}" + (f"=<{name}>" if name else "") + "\n"
        text += "\n".join("     " + line for line in textwrap.wrap(usage, 67) or [""]) + "\n\n"
    return text


# --------------------------------------------------------------------------- commands


@dataclass
class Call:
    """One run of a command: its parsed flags and positional arguments."""

    command: Command
    values: dict[str, Any]
    args: list[str]
    explicit: set[str]

    def client(self) -> Client:
        """The API client the HTTP flags and CONSUL_* variables describe (Consul's HTTPFlags.APIClient)."""
        try:
            return client_from_flags(self.values, self.explicit, os.environ)
        except ApiError as exc:
            raise Fail(f"Error connecting to Consul agent: {exc}") from None


@dataclass
class Command:
    """A CLI command: `name` is its full path ("kv get"); a command without `action` only groups others."""

    name: str
    synopsis: str
    usage: str
    action: Callable[[Call], int] | None = None
    flags: Callable[[FlagSet], None] | None = None
    http: str = ""  # "", "client" or "client+server": which of Consul's HTTP flag groups the command takes
    repeat_flag_error: bool = False  # `validate` reports a flag error a second time, through its UI

    def flagset(self) -> FlagSet:
        flags = FlagSet(self.name)
        if self.flags is not None:
            self.flags(flags)
        if self.http:
            add_client_flags(flags)
        if self.http == "client+server":
            add_server_flags(flags)
        return flags

    def run(self, args: list[str]) -> int:
        if self.action is None:
            raise ShowHelp
        flags = self.flagset()
        try:
            values, positional, explicit = flags.parse(args)
        except FlagError as exc:
            err(f"{exc}\nUsage:\n{print_defaults(flags)}".rstrip("\n"))
            if self.repeat_flag_error:
                err(str(exc))
            return 1
        try:
            return self.action(Call(self, values, positional, explicit))
        except Fail as exc:
            err(exc.message)
            return 1


class ShowHelp(Exception):
    """Raised by a command that wants its help shown on stderr with exit status 1 (cli.RunResultHelp)."""


def usage_error(call: Call, message: str) -> int:
    """A wrong command line: the message, a blank line and the command's help on stderr; exit status 1."""
    err(message)
    err("")
    err(command_help(call.command))
    return 1


def command_help(command: Command) -> str:
    """A command's Help(): its usage text, then its HTTP API options and its own options (Consul's flags.Usage)."""
    text = command.usage.strip() + "\n\n"
    flags = command.flagset().flags
    http = [f for f in flags if f.name in HTTP_FLAG_NAMES]
    own = [f for f in flags if f.name not in HTTP_FLAG_NAMES]
    if http:
        text += flag_block("HTTP API Options", http)
    if own:
        text += flag_block("Command Options", own)
    return text.rstrip("\n")


@dataclass
class Registry:
    """All commands by full name; parents are listed too so `consul kv` can show its subcommands."""

    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, *commands: Command) -> None:
        for command in commands:
            self.commands[command.name] = command

    def children(self, name: str) -> list[Command]:
        prefix = name + " " if name else ""
        return [c for key, c in sorted(self.commands.items())
                if key.startswith(prefix) and " " not in key[len(prefix):]]

    def resolve(self, top: str, args: list[str]) -> tuple[Command, list[str]]:
        """The deepest command named by `top` and the leading words of `args`, and the arguments left."""
        name = top
        rest = list(args)
        while rest and f"{name} {rest[0]}" in self.commands:
            name = f"{name} {rest.pop(0)}"
        return self.commands[name], rest

    def help(self, command: Command) -> str:
        """mitchellh/cli's command help: the command's usage and flags, then its subcommands."""
        text = command_help(command)
        subs = self.children(command.name)
        if subs:
            longest = max(len(c.name) for c in subs)
            text += "\n\nSubcommands:"
            for sub in subs:
                short = sub.name.rsplit(" ", 1)[-1]
                text += f"\n    {short}{' ' * (longest - len(sub.name))}    {sub.synopsis}"
        return text + "\n"

    def run(self, top: str, args: list[str]) -> int:
        """Run `consul <top> <args>` as mitchellh/cli would (help flags are handled before), returning the status."""
        command, rest = self.resolve(top, args)
        try:
            try:
                code = command.run(rest)
            except ShowHelp:
                emit(self.help(command), error=True)
                return 1
            sys.stdout.buffer.flush()
            return code
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
