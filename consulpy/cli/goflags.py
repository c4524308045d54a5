"""Go `flag`-package parsing, so consulpy commands accept flags exactly as Consul's do.

Rules (Go's): `-name value`, `-name=value`, `--name` and `--name=value` are all one flag; a bool flag
takes a value only as `-name=true|false`; parsing stops at the first non-flag argument or at `--`;
repeatable flags collect a list. Imports: stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consulpy.gostrconv import parse_bool


class FlagError(ValueError):
    """A command line that Go's flag package would reject; the message is Go's wording."""


@dataclass(slots=True)
class Flag:
    """One flag: its name, how to convert its text, and whether it may repeat."""

    name: str
    usage: str = ""
    kind: str = "string"  # string | bool | int | list
    default: Any = None
    convert: Callable[[str], Any] | None = None
    aliases: tuple[str, ...] = ()


@dataclass(slots=True)
class FlagSet:
    """A named set of flags; `parse` returns the values set and the remaining arguments."""

    command: str
    flags: list[Flag] = field(default_factory=list)

    def add(self, name: str, usage: str = "", kind: str = "string", default: Any = None,
            convert: Callable[[str], Any] | None = None, aliases: tuple[str, ...] = ()) -> None:
        self.flags.append(Flag(name, usage, kind, default, convert, aliases))

    def _lookup(self) -> dict[str, Flag]:
        table: dict[str, Flag] = {}
        for flag in self.flags:
            table[flag.name] = flag
            for alias in flag.aliases:
                table[alias] = flag
        return table

    def defaults(self) -> dict[str, Any]:
        return {f.name: ([] if f.kind == "list" else f.default) for f in self.flags}

    def parse(self, args: Sequence[str]) -> tuple[dict[str, Any], list[str], set[str]]:
        """Parse `args`; returns (values by flag name, positional args, names explicitly set)."""
        table = self._lookup()
        values = self.defaults()
        explicit: set[str] = set()
        rest = list(args)
        while rest:
            arg = rest[0]
            if len(arg) < 2 or arg[0] != "-":
                break
            if arg == "--":
                rest.pop(0)
                break
            rest.pop(0)
            name = arg[2:] if arg.startswith("--") else arg[1:]
            if not name or name[0] in "-=":
                raise FlagError(f"bad flag syntax: {arg}")
            value: str | None = None
            if "=" in name:
                name, value = name.split("=", 1)
            flag = table.get(name)
            if flag is None:
                raise FlagError(f"flag provided but not defined: -{name}")
            if flag.kind == "bool":
                if value is None:
                    converted: Any = True
                else:
                    converted = parse_bool(value)
                    if converted is None:
                        raise FlagError(f'invalid boolean value "{value}" for -{name}: parse error')
            else:
                if value is None:
                    if not rest:
                        raise FlagError(f"flag needs an argument: -{name}")
                    value = rest.pop(0)
                converted = self._convert(flag, name, value)
            if flag.kind == "list":
                values[flag.name].append(converted)
            else:
                values[flag.name] = converted
            explicit.add(flag.name)
        return values, rest, explicit

    @staticmethod
    def _convert(flag: Flag, name: str, value: str) -> Any:
        try:
            if flag.convert is not None:
                return flag.convert(value)
            if flag.kind == "int":
                return int(value, 0)
        except ValueError as exc:
            raise FlagError(f'invalid value "{value}" for flag -{name}: {exc}') from None
        return value
