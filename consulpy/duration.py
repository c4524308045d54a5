"""Go `time.Duration` parsing and formatting, as Consul's HTTP API and config files use them.

Durations are carried as integer nanoseconds. Imports: stdlib only.
"""

from __future__ import annotations

import re

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,
    "μs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_MAX = (1 << 63) - 1


class DurationError(ValueError):
    """A string that Go's time.ParseDuration would reject."""


def parse_duration(text: str) -> int:
    """Parse a Go duration string ("1m30s", "300ms", "0") into nanoseconds."""
    original = text
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None or match.group(1) in ("", "."):
            if match is None and re.match(r"\d*\.?\d*$", text[pos:]):
                raise DurationError(f'time: missing unit in duration "{original}"')
            raise DurationError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if total > _MAX:
        raise DurationError(f'time: invalid duration "{original}"')
    return sign * round(total)


def parse_duration_value(value: object) -> int:
    """A JSON duration field: a Go duration string or a number of nanoseconds."""
    if isinstance(value, bool):
        raise DurationError(f"invalid duration {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise DurationError(f"invalid duration {value!r}")


def _format_fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if frac == 0:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(ns: int) -> str:
    """Format nanoseconds the way Go's Duration.String() does ("1m0s", "1.5s", "300ms")."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < MICROSECOND:
        return f"{sign}{ns}ns"
    if ns < MILLISECOND:
        return f"{sign}{_format_fraction(ns, MICROSECOND)}µs"
    if ns < SECOND:
        return f"{sign}{_format_fraction(ns, MILLISECOND)}ms"
    hours, rest = divmod(ns, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds = _format_fraction(rest, SECOND)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"
