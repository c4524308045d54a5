"""Go's strconv parsing rules where Consul's interface exposes them (flags, query params, filters, env vars).

Imports: stdlib only.
"""

from __future__ import annotations

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool; None where Go would return a syntax error."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None
