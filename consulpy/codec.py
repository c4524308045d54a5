"""msgpack encoding of frozen dataclass records and commands, used for the Raft log, RPC and snapshots.

A record class registers a stable one-byte code with `@wire(code)`; it is packed as a msgpack ext of
that code holding its field values in declaration order, so nested records round-trip generically.
Sequences decode as tuples (records are frozen). Imports: stdlib, msgpack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

T = TypeVar("T")

_BY_CODE: dict[int, type] = {}
_CODE_OF: dict[type, int] = {}


class CodecError(ValueError):
    """Bytes that are not a valid encoding of a registered record."""


def wire(code: int) -> Callable[[type[T]], type[T]]:
    """Register a dataclass under a msgpack ext code (0..127, unique, never reused)."""

    def register(cls: type[T]) -> type[T]:
        if code in _BY_CODE:
            raise ValueError(f"wire code {code} already used by {_BY_CODE[code].__name__}")
        _BY_CODE[code] = cls
        _CODE_OF[cls] = code
        return cls

    return register


_FIELDS: dict[type, tuple[str, ...]] = {}


def _default(obj: Any) -> Any:
    cls = type(obj)
    code = _CODE_OF.get(cls)
    if code is None:
        raise TypeError(f"cannot encode {cls.__name__}")
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(obj))
    values = [getattr(obj, name) for name in names]
    return msgpack.ExtType(code, msgpack.packb(values, default=_default, use_bin_type=True))


def _ext_hook(code: int, data: bytes) -> Any:
    cls = _BY_CODE.get(code)
    if cls is None:
        raise CodecError(f"unknown record code {code}")
    values = msgpack.unpackb(data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False)
    try:
        return cls(*values)
    except TypeError as exc:
        raise CodecError(f"bad {cls.__name__} record: {exc}") from None


def encode(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def decode(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(str(exc)) from None
