"""`consul kv get|put|delete|export|import`: the key-value store from the command line, worded as Consul's.

Values are bytes end to end (arguments via os.fsencode, output via stdout's buffer); export/import use
Consul's `[{"key", "flags", "value"(base64)}]` format. Imports: stdlib, consulpy.cli.base, consulpy.cli.http.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import string
from typing import Any

from consulpy.cli.base import Call, Command, Fail, go_uint, out, read_data_arg, tabwrite
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError, Client
from consulpy.gojson import json_type

_B64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/")


def go_b64decode(text: bytes) -> bytes:
    """Go's base64.StdEncoding.DecodeString: strict padding, CR/LF ignored, errors name the bad byte."""
    data = text.replace(b"\r", b"").replace(b"\n", b"")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    body = data.rstrip(b"=")
    for i, byte in enumerate(body):
        if chr(byte) not in _B64_ALPHABET:
            raise ValueError(f"illegal base64 data at input byte {i}") from None
    raise ValueError(f"illegal base64 data at input byte {len(data) - len(data) % 4}") from None


def _path(key: str) -> str:
    return "/v1/kv/" + key


def _read_params(call: Call, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    params = list(extra)
    if call.values["stale"]:
        params.append(("stale", ""))
    return params


def _kv_read(client: Client, key: str, params: list[tuple[str, str]]) -> Any:
    """A KV read as the Go client does it: 404 is "nothing", other failures carry only the status code."""
    reply = client.request("GET", _path(key), params)
    if reply.status == 404:
        return None
    if reply.status != 200:
        raise ApiError(f"Unexpected response code: {reply.status}")
    return reply.json()


def _value(pair: dict[str, Any]) -> bytes:
    return base64.b64decode(pair.get("Value") or "")


def _kv_write(client: Client, method: str, key: str, params: list[tuple[str, str]], body: bytes | None = None
              ) -> bool:
    """A KV PUT/DELETE; the answer is the `true`/`false` the agent writes back."""
    if method == "PUT" and key.startswith("/"):
        raise ApiError(f"Invalid key. Key must not begin with a '/': {key}")
    reply = client.call(method, _path(key), params, body)
    return b"true" in reply.body


def _single_key(call: Call) -> str:
    if len(call.args) > 1:
        raise Fail(f"Too many arguments (expected 1, got {len(call.args)})")
    key = call.args[0] if call.args else ""
    return key[1:] if key.startswith("/") else key


# --------------------------------------------------------------------------- kv get


def _get_flags(flags: FlagSet) -> None:
    flags.add("base64", "Print values base64-encoded.", kind="bool", default=False)
    flags.add("detailed", "Print the key's metadata (indexes, flags, session) along with its value.",
              kind="bool", default=False)
    flags.add("keys", "List the key names under the prefix instead of values; see -separator.",
              kind="bool", default=False)
    flags.add("recurse", "Print every key under the prefix with its value.", kind="bool", default=False)
    flags.add("separator", "With -keys, list only up to the next occurrence of this string.", default="/")


def _pretty(pair: dict[str, Any], encode: bool) -> str:
    value = _value(pair)
    shown = base64.b64encode(value).decode() if encode else value.decode("utf-8", "surrogateescape")
    session = pair.get("Session") or "-"
    return tabwrite(f"CreateIndex\t{pair.get('CreateIndex', 0)}\nFlags\t{pair.get('Flags', 0)}\n"
                    f"Key\t{pair.get('Key', '')}\nLockIndex\t{pair.get('LockIndex', 0)}\n"
                    f"ModifyIndex\t{pair.get('ModifyIndex', 0)}\nSession\t{session}\nValue\t{shown}")


def kv_get(call: Call) -> int:
    key = _single_key(call)
    values = call.values
    if not key and not (values["recurse"] or values["keys"]):
        raise Fail("Error! Missing KEY argument")
    client = call.client()
    try:
        if values["keys"]:
            extra = [("separator", values["separator"])] if values["separator"] else []
            for name in _kv_read(client, key, _read_params(call, ("keys", ""), *extra)) or []:
                out(name)
            return 0
        if values["recurse"]:
            pairs = _kv_read(client, key, _read_params(call, ("recurse", ""))) or []
            for i, pair in enumerate(pairs):
                if values["detailed"]:
                    out(_pretty(pair, values["base64"]))
                    if i < len(pairs) - 1:
                        out()
                else:
                    value = _value(pair)
                    out(pair["Key"].encode("utf-8", "surrogateescape") + b":"
                        + (base64.b64encode(value) if values["base64"] else value))
            return 0
        found = _kv_read(client, key, _read_params(call))
    except ApiError as exc:
        raise Fail(f"Error querying Consul agent: {exc}") from None
    if not found:
        raise Fail(f"Error! No key exists at: {key}")
    if values["detailed"]:
        out(_pretty(found[0], values["base64"]))
    else:
        out(_value(found[0]))
    return 0


# --------------------------------------------------------------------------- kv put


def _put_flags(flags: FlagSet) -> None:
    flags.add("cas", "Check-and-set: write only if the key's ModifyIndex equals -modify-index.",
              kind="bool", default=False)
    flags.add("flags", "Opaque unsigned integer stored with the key for the application's own use.",
              kind="int", default=0, convert=go_uint)
    flags.add("base64", "The data is base64-encoded; decode it before writing.", kind="bool", default=False)
    flags.add("modify-index", "The ModifyIndex the key must have for a -cas write.", kind="int", default=0,
              convert=go_uint)
    flags.add("session", "Session to acquire or release the key's lock with (-acquire, -release).")
    flags.add("acquire", "Take the key's lock for -session, creating the key if needed.", kind="bool",
              default=False)
    flags.add("release", "Give up the key's lock held by -session.", kind="bool", default=False)


def kv_put(call: Call) -> int:
    values = call.values
    if not call.args:
        raise Fail("Error! Missing KEY argument")
    if len(call.args) > 2:
        raise Fail(f"Error! Too many arguments (expected 1 or 2, got {len(call.args)})")
    key = call.args[0]
    raw = call.args[1] if len(call.args) == 2 else ""
    data = read_data_arg(raw) if raw else b""
    if values["base64"]:
        try:
            data = go_b64decode(data)
        except ValueError as exc:
            raise Fail(f"Error! Cannot base 64 decode data: {exc}") from None
    session = values["session"] or ""
    if (values["release"] or values["acquire"]) and not session:
        raise Fail("Error! Missing -session (required with -acquire and -release)")
    if values["cas"] and values["modify-index"] == 0:
        raise Fail("Must specify -modify-index with -cas!")
    client = call.client()
    params = [("flags", str(values["flags"]))] if values["flags"] else []
    if values["cas"]:
        try:
            ok = _kv_write(client, "PUT", key, [*params, ("cas", str(values["modify-index"]))], data)
        except ApiError as exc:
            raise Fail(f"Error! Did not write to {key}: {exc}") from None
        if not ok:
            raise Fail(f"Error! Did not write to {key}: CAS failed")
        out(f"Success! Data written to: {key}")
    elif values["acquire"]:
        try:
            ok = _kv_write(client, "PUT", key, [*params, ("acquire", session)], data)
        except ApiError as exc:
            raise Fail(f"Error! Failed writing data: {exc}") from None
        if not ok:
            raise Fail("Error! Did not acquire lock")
        out(f"Success! Lock acquired on: {key}")
    elif values["release"]:
        try:
            ok = _kv_write(client, "PUT", key, [*params, ("release", session)], data)
        except ApiError:
            raise Fail(f"Error! Failed writing data: {key}") from None
        if not ok:
            raise Fail("Error! Did not release lock")
        out(f"Success! Lock released on: {key}")
    else:
        try:
            _kv_write(client, "PUT", key, params, data)
        except ApiError as exc:
            raise Fail(f"Error! Failed writing data: {exc}") from None
        out(f"Success! Data written to: {key}")
    return 0


# --------------------------------------------------------------------------- kv delete


def _delete_flags(flags: FlagSet) -> None:
    flags.add("cas", "Check-and-set: delete only if the key's ModifyIndex equals -modify-index.",
              kind="bool", default=False)
    flags.add("modify-index", "The ModifyIndex the key must have for a -cas delete.", kind="int", default=0,
              convert=go_uint)
    flags.add("recurse", "Delete every key that starts with the given prefix.", kind="bool", default=False)


def kv_delete(call: Call) -> int:
    values = call.values
    key = _single_key(call)
    if not key and not values["recurse"]:
        raise Fail("Error! Missing KEY argument")
    if values["cas"] and values["modify-index"] == 0:
        raise Fail("Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.")
    if values["modify-index"] and not values["cas"]:
        raise Fail("Cannot specify -modify-index without -cas!")
    if values["recurse"] and values["cas"]:
        raise Fail("Cannot specify both -cas and -recurse!")
    client = call.client()
    if values["recurse"]:
        try:
            _kv_write(client, "DELETE", key, [("recurse", "")])
        except ApiError as exc:
            raise Fail(f"Error! Did not delete prefix {key}: {exc}") from None
        out(f"Success! Deleted keys with prefix: {key}")
    elif values["cas"]:
        try:
            ok = _kv_write(client, "DELETE", key, [("cas", str(values["modify-index"]))])
        except ApiError as exc:
            raise Fail(f"Error! Did not delete key {key}: {exc}") from None
        if not ok:
            raise Fail(f"Error! Did not delete key {key}: CAS failed")
        out(f"Success! Deleted key: {key}")
    else:
        try:
            _kv_write(client, "DELETE", key, [])
        except ApiError as exc:
            raise Fail(f"Error deleting key {key}: {exc}") from None
        out(f"Success! Deleted key: {key}")
    return 0


# --------------------------------------------------------------------------- kv export / import


def go_json(obj: Any, indent: str) -> str:
    """Go's json.MarshalIndent text: UTF-8 kept, and <, >, & escaped as Go's HTML-safe encoder does."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def kv_export(call: Call) -> int:
    key = _single_key(call)
    client = call.client()
    try:
        pairs = _kv_read(client, key, _read_params(call, ("recurse", ""))) or []
    except ApiError as exc:
        raise Fail(f"Error querying Consul agent: {exc}") from None
    entries = [{"key": p["Key"], "flags": p.get("Flags", 0), "value": p.get("Value") or ""} for p in pairs]
    out(go_json(entries, "\t"))
    return 0


def _import_flags(flags: FlagSet) -> None:
    flags.add("prefix", "Key prefix to put in front of every imported key; by default the keys are used as is.",
              default="")


def _entries(data: bytes) -> list[dict[str, Any]]:
    """Decode `kv export` output as Go's json.Unmarshal into []*Entry would, with its error wording."""
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise Fail(f"Cannot unmarshal data: {exc}") from None
    if parsed is None:
        return []
    if not isinstance(parsed, list):
        raise Fail(f"Cannot unmarshal data: json: cannot unmarshal {json_type(parsed)} into Go value of type "
                   "[]*impexp.Entry")
    entries = []
    for item in parsed:
        if item is None:
            continue
        if not isinstance(item, dict):
            raise Fail(f"Cannot unmarshal data: json: cannot unmarshal {json_type(item)} into Go value of type "
                       "impexp.Entry")
        fields = {k.lower(): v for k, v in item.items()}
        for name, want in (("key", str), ("value", str)):
            if fields.get(name) is not None and not isinstance(fields[name], want):
                raise Fail(f"Cannot unmarshal data: json: cannot unmarshal {json_type(fields[name])} into Go "
                           f"struct field Entry.{name} of type string")
        flags = fields.get("flags")
        if flags is not None and (isinstance(flags, bool) or not isinstance(flags, int) or flags < 0):
            raise Fail(f"Cannot unmarshal data: json: cannot unmarshal {json_type(flags)} into Go struct field "
                       "Entry.flags of type uint64")
        entries.append({"key": fields.get("key") or "", "flags": flags or 0, "value": fields.get("value") or ""})
    return entries


def _join_key(prefix: str, key: str) -> str:
    """Go's path.Join(prefix, key), keeping the trailing slash that marks a "folder" key."""
    joined = posixpath.normpath(posixpath.join(prefix, key)) if prefix or key else ""
    if joined in ("", "."):
        joined = ""
    elif joined.startswith("//"):
        joined = joined[1:]
    if key.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return joined


def kv_import(call: Call) -> int:
    if not call.args:
        raise Fail("Error! Missing DATA argument")
    if len(call.args) > 1:
        raise Fail(f"Error! Too many arguments (expected 1, got {len(call.args)})")
    if not call.args[0]:
        raise Fail("Error! Empty DATA argument")
    data = read_data_arg(call.args[0])
    client = call.client()
    prefix = call.values["prefix"]
    for entry in _entries(data):
        try:
            value = go_b64decode(entry["value"].encode())
        except ValueError as exc:
            raise Fail(f"Error base 64 decoding value for key {entry['key']}: {exc}") from None
        key = _join_key(prefix, entry["key"])
        params = [("flags", str(entry["flags"]))] if entry["flags"] else []
        try:
            _kv_write(client, "PUT", key, params, value)
        except ApiError as exc:
            raise Fail(f"Error! Failed writing data for key {key}: {exc}") from None
        out(f"Imported: {key}")
    return 0


COMMANDS = [
    Command("kv", "Work with the key-value store",
            "Usage: consul kv <subcommand> [options] [args]\n\n"
            "  Reads and writes Consul's key-value store. Run a subcommand with -h\n  for its options."),
    Command("kv get", "Read a value, or list keys and values under a prefix",
            "Usage: consul kv get [options] [KEY_OR_PREFIX]\n\n"
            "  Prints the value stored at KEY, or with -recurse or -keys the entries\n"
            "  under PREFIX. A missing key is an error; an existing empty key prints\n  an empty line.",
            kv_get, _get_flags, "client+server"),
    Command("kv put", "Write a value to the key-value store",
            "Usage: consul kv put [options] KEY [DATA]\n\n"
            "  Stores DATA at KEY. DATA may be @FILE to read a file or - to read stdin;\n"
            "  without DATA the key is written empty.", kv_put, _put_flags, "client+server"),
    Command("kv delete", "Remove a key, or every key under a prefix",
            "Usage: consul kv delete [options] KEY_OR_PREFIX\n\n"
            "  Deletes KEY; with -recurse, every key that starts with PREFIX.\n"
            "  Deleting a key that does not exist succeeds.", kv_delete, _delete_flags, "client+server"),
    Command("kv export", "Print the keys under a prefix as JSON",
            "Usage: consul kv export [options] [PREFIX]\n\n"
            "  Prints every key under PREFIX as a JSON array that \"consul kv import\"\n  reads back.",
            kv_export, None, "client+server"),
    Command("kv import", "Write keys from JSON made by kv export",
            "Usage: consul kv import [options] [DATA]\n\n"
            "  Writes the entries of a \"consul kv export\" document. DATA may be\n  @FILE, or - for stdin.",
            kv_import, _import_flags, "client+server"),
]
