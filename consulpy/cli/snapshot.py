"""`consul snapshot save|restore|inspect`: disaster-recovery snapshots from the command line, worded as Consul 1.20.

`save` writes the archive to FILE.unverified, verifies it, then renames it; `restore` sends a file to the
agent; `inspect` prints the archive's metadata and what its state image holds, by Consul's record type
names (Register, KVS, Tombstone, Session, Index), as a table or as JSON. Imports: stdlib, consulpy.cli.base,
consulpy.cli.goflags, consulpy.cli.http, consulpy.state (to read an archive and its image).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

from consulpy.cli.base import Call, Command, Fail, go_int, go_os_error, go_quote, out, tabwrite
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError
from consulpy.state import StateStore
from consulpy.state.snapshot import SnapshotError, image_records, load_into, read_archive

FORMATS = ("pretty", "json")
_UNITS = ((1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB"), (1, "B"))


def _one_file(call: Call, expected: str = "1") -> str:
    if not call.args:
        raise Fail("Missing FILE argument")
    if len(call.args) > 1:
        raise Fail(f"Too many arguments (expected {expected}, got {len(call.args)})")
    return call.args[0]


def _read_snapshot_file(file: str) -> bytes:
    try:
        with open(file, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise Fail(f"Error opening snapshot file: {go_os_error('open', file, exc)}") from None


# --------------------------------------------------------------------------- save


def _save_flags(flags: FlagSet) -> None:
    flags.add("append-filename", "Append filename flag takes two possible values. 1. version, 2. dc. It appends "
                                 "consul version and datacenter to filename given in command", default="")


def _go_ext(path: str) -> str:
    """Go's filepath.Ext: from the last dot of the last path element, or ""."""
    dot = path.rfind(".")
    return path[dot:] if dot > path.rfind("/") else ""


def _named(file: str, wanted: list[str], config: dict[str, Any]) -> str:
    """FILE with `-<version>` and/or `-<datacenter>` put before its extension, as -append-filename asks."""
    ext = _go_ext(file)
    stem = file[:len(file) - len(ext)]
    if "version" in wanted and isinstance(config.get("Version"), str):
        stem += "-" + config["Version"]
    if "dc" in wanted and isinstance(config.get("Datacenter"), str):
        stem += "-" + config["Datacenter"]
    return stem + ext


def save(call: Call) -> int:
    file = _one_file(call, "1 or 3")
    client = call.client()
    # Consul 1.20 asks the agent for its version and datacenter on every save, -append-filename or not.
    try:
        self_info = client.get_json("/v1/agent/self") or {}
    except ApiError as exc:
        raise Fail(f"Error connecting to Consul agent and fetching datacenter/version: {exc}") from None
    wanted = call.values["append-filename"].split(",")
    file = _named(file, wanted, self_info.get("Config") or {})
    try:
        reply = client.call("GET", "/v1/snapshot", [("stale", "")] if call.values["stale"] else [])
    except ApiError as exc:
        raise Fail(f"Error saving snapshot: {exc}") from None
    unverified = file + ".unverified"
    try:
        fd = os.open(unverified, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(reply.body)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise Fail(f"Error writing unverified snapshot file: {go_os_error('open', unverified, exc)}") from None
    try:
        try:
            read_archive(reply.body)
        except SnapshotError as exc:
            raise Fail(f"Error verifying snapshot file: {exc}") from None
        try:
            os.replace(unverified, file)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise Fail(f"Error renaming {go_quote(unverified)} to {go_quote(file)}: rename {unverified} {file}: "
                       f"{reason[:1].lower()}{reason[1:]}") from None
    finally:
        if os.path.exists(unverified):
            os.remove(unverified)
    out(f"Saved and verified snapshot to index {reply.headers.get('X-Consul-Index', '0')}")
    return 0


# --------------------------------------------------------------------------- restore


def restore(call: Call) -> int:
    file = _one_file(call)
    client = call.client()
    archive = _read_snapshot_file(file)
    try:
        client.call("PUT", "/v1/snapshot", body=archive, content_type="application/octet-stream")
    except ApiError as exc:
        raise Fail(f"Error restoring snapshot: {exc}") from None
    out("Restored snapshot")
    return 0


# --------------------------------------------------------------------------- inspect


def _inspect_flags(flags: FlagSet) -> None:
    flags.add("kvdetails", "Provides a detailed KV space usage breakdown for any KV data that's been stored.",
              kind="bool", default=False)
    flags.add("kvdepth", "Can only be used with -kvdetails. The key prefix depth used to breakdown KV store data. "
                         "Defaults to 2.", kind="int", default=2, convert=go_int)
    flags.add("kvfilter", "Can only be used with -kvdetails. Limits KV key breakdown using this prefix filter.",
              default="")
    flags.add("format", "Output format {pretty|json}", default="pretty")


def byte_size(size: int) -> str:
    """Consul's ByteSize: one decimal place, trailing ".0" dropped, the largest unit that fits."""
    if size == 0:
        return "0"
    for scale, unit in _UNITS:
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + unit
    return str(size)


def _sorted_stats(stats: dict[str, list[int]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"Name": name, "Sum": total, "Count": count}
                                  for name, (count, total) in stats.items()]
    rows.sort(key=lambda row: (-row["Sum"], row["Name"]))
    return rows


def _stats(store: StateStore, details: bool, depth: int, prefix_filter: str) -> dict[str, Any]:
    """Counts and encoded sizes per record type (and per KV key prefix with -kvdetails)."""
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_prefix: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for kind, size, key in image_records(store):
        by_type[kind][0] += 1
        by_type[kind][1] += size
        if details and kind == "KVS" and key.startswith(prefix_filter):
            parts = key.split("/")
            prefix = "/".join(parts[:max(0, min(depth, len(parts)))])
            by_prefix[prefix][0] += 1
            by_prefix[prefix][1] += size
    return {"Stats": _sorted_stats(by_type), "StatsKV": _sorted_stats(by_prefix) if by_prefix else None,
            "TotalSize": sum(total for _, total in by_type.values()),
            "TotalSizeKV": sum(total for _, total in by_prefix.values())}


def _table(title: str, rows: list[dict[str, Any]], total: int) -> str:
    text = f"\n {title}\tCount\tSize\n ----\t----\t----"
    for row in rows:
        text += f"\n {row['Name']}\t{row['Count']}\t{byte_size(row['Sum'])}"
    return text + f"\n ----\t----\t----\n Total\t\t{byte_size(total)}"


def _pretty(info: dict[str, Any]) -> str:
    meta = info["Meta"]
    text = (f" ID\t{meta['ID']}\n Size\t{meta['Size']}\n Index\t{meta['Index']}\n Term\t{meta['Term']}\n"
            f" Version\t{meta['Version']}\n")
    text += _table("Type", info["Stats"], info["TotalSize"])
    if info["StatsKV"] is not None:
        text += "\n" + _table("Key Name", info["StatsKV"], info["TotalSizeKV"])
    return tabwrite(text)


def inspect(call: Call) -> int:
    archive = _read_snapshot_file(_one_file(call))
    try:
        meta, image = read_archive(archive)
    except SnapshotError as exc:
        raise Fail(f"Error reading snapshot: {exc}") from None
    store = StateStore()
    try:
        load_into(store, image)
    except SnapshotError as exc:
        raise Fail(f"Error extracting snapshot data: {exc}") from None
    values = call.values
    if values["format"] not in FORMATS:
        raise Fail(f"Error outputting enhanced snapshot data: Unknown format: {values['format']}")
    info = {"Meta": {"ID": meta.id, "Size": meta.size, "Index": meta.index, "Term": meta.term,
                     "Version": meta.version},
            **_stats(store, values["kvdetails"], values["kvdepth"], values["kvfilter"])}
    out(_pretty(info) if values["format"] == "pretty" else json.dumps(info, indent=3))
    return 0


COMMANDS = [
    Command("snapshot", "Saves, restores and inspects snapshots of Consul server state",
            "Usage: consul snapshot <subcommand> [options] [args]\n\n"
            "  Saves, restores and inspects point-in-time snapshots of the servers' state:\n"
            "  key/value entries, the service catalog and sessions.\n\n"
            "  Create a snapshot:\n\n      $ consul snapshot save backup.snap\n\n"
            "  Restore a snapshot:\n\n      $ consul snapshot restore backup.snap\n\n"
            "  Inspect a snapshot:\n\n      $ consul snapshot inspect backup.snap\n\n"
            "  For more examples, ask for subcommand help or view the documentation."),
    Command("snapshot save", "Saves snapshot of Consul server state",
            "Usage: consul snapshot save [options] FILE\n\n"
            "  Retrieves an atomic, point-in-time snapshot of the state of the Consul servers\n"
            "  (key/value entries, service catalog, sessions) and writes it to FILE, after\n"
            "  verifying it. With -stale any server may answer (useful without a leader).",
            save, _save_flags, "client+server"),
    Command("snapshot restore", "Restores snapshot of Consul server state",
            "Usage: consul snapshot restore [options] FILE\n\n"
            "  Restores a snapshot taken by \"consul snapshot save\" into the servers,\n"
            "  replacing their whole state. Primarily meant for disaster recovery into a\n  fresh cluster.",
            restore, None, "client+server"),
    Command("snapshot inspect", "Displays information about a Consul snapshot file",
            "Usage: consul snapshot inspect [options] FILE\n\n"
            "  Displays information about a snapshot file on disk.\n\n"
            "  To inspect the file \"backup.snap\":\n\n    $ consul snapshot inspect backup.snap",
            inspect, _inspect_flags, repeat_flag_error=True),
]
