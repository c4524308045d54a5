"""The `consulpy` CLI as a process against real dev agents: output, stderr and exit codes as Consul's CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.agentproc import ROOT, AgentProcess

TOP_USAGE = "Usage: consul [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n"
MEMBERS_HEADER = ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition", "Segment"]


def consul(*args: str, agent: AgentProcess | None = None, env: dict[str, str] | None = None,
           stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python -m consulpy ARGS`, pointed at `agent` through CONSUL_HTTP_ADDR (with its http:// scheme)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    if agent is not None:
        environ["CONSUL_HTTP_ADDR"] = agent.http
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "consulpy", *args], input=stdin, capture_output=True, text=True,
                          timeout=20, cwd=ROOT, env=environ)


def ok(*args: str, agent: AgentProcess | None = None, stdin: str = "") -> str:
    result = consul(*args, agent=agent, stdin=stdin)
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout


def failed(*args: str, agent: AgentProcess | None = None, code: int = 1, env: dict[str, str] | None = None,
           stdin: str = "") -> str:
    result = consul(*args, agent=agent, env=env, stdin=stdin)
    assert result.returncode == code, result
    assert result.stdout == "", result
    return result.stderr


# --------------------------------------------------------------------------- no agent needed


def test_top_level_usage_help_and_version() -> None:
    bare = consul()
    assert bare.returncode == 127 and bare.stdout == ""
    assert bare.stderr.startswith(TOP_USAGE)
    for name in ("agent", "catalog", "info", "kv", "leave", "maint", "members", "reload", "services", "validate",
                 "version"):
        assert f"\n    {name} " in bare.stderr, name
    unknown = consul("bogus", "x")
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (127, "", bare.stderr)
    helped = consul("-h")
    assert (helped.returncode, helped.stdout, helped.stderr) == (0, bare.stderr, "")

    parent = consul("kv")
    assert parent.returncode == 1 and parent.stdout == ""
    assert parent.stderr.startswith("Usage: consul kv <subcommand>")
    assert "\n\nSubcommands:\n    delete    " in parent.stderr and "\n    put       " in parent.stderr

    for args in (("kv", "get", "-h"), ("-help", "kv", "get"), ("kv", "put", "key", "--help")):
        text = ok(*args)
        assert text.startswith("Usage: consul kv get" if "get" in args else "Usage: consul kv put"), args
        assert "\nHTTP API Options\n\n  -ca-file=<value>\n" in text and "\nCommand Options\n" in text

    version = ok("version")
    lines = version.split("\n")
    assert lines[0] == "Consul v1.20.1" and lines[1].startswith("Revision ") and lines[2].startswith("Build Date ")
    assert lines[3] == ("Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol "
                        ">2 when speaking to compatible agents)")
    assert lines[4:] == ["", ""]
    assert ok("-v") == version and ok("--version") == version
    info = json.loads(ok("version", "-format=json"))
    assert info["Version"] == "1.20.1" and info["RPC"] == {"Default": 2, "Min": 2, "Max": 3}
    assert failed("version", "-format", "xml") == "Unknown format: xml\n"


def test_flag_errors() -> None:
    stderr = failed("members", "-bogus")
    assert stderr.startswith("flag provided but not defined: -bogus\nUsage:\n  -ca-file value\n")
    assert "\n  -status string\n    \t" in stderr and '(default ".*")\n' in stderr
    assert failed("kv", "put", "-flags=abc", "k").startswith('invalid value "abc" for flag -flags: parse error\n')
    assert failed("kv", "get", "-detailed=maybe", "k").startswith(
        'invalid boolean value "maybe" for -detailed: parse error\n')
    assert failed("kv", "get", "-separator").startswith("flag needs an argument: -separator\n")
    before = failed("-x", "members")
    assert before.startswith("Invalid flags before the subcommand. If these flags are for\nthe subcommand, please "
                             "put them after the subcommand.\n\nUsage: consul members [options]")
    assert failed("-dev", "agent").startswith("Invalid flags before the subcommand.")
    assert ok("-h", "agent").startswith("Usage: consul agent [options]\n")
    assert failed("catalog", "nodes", "-node-meta=novalue").startswith(
        'invalid value "novalue" for flag -node-meta: Missing "=" value in argument: novalue\n')
    assert failed("kv", "get") == "Error! Missing KEY argument\n"
    assert failed("kv", "get", "a", "b") == "Too many arguments (expected 1, got 2)\n"
    assert failed("kv", "put") == "Error! Missing KEY argument\n"
    assert failed("kv", "put", "a", "b", "c") == "Error! Too many arguments (expected 1 or 2, got 3)\n"
    assert failed("kv", "put", "-acquire", "k") == "Error! Missing -session (required with -acquire and -release)\n"
    assert failed("kv", "delete", "-modify-index=3", "k") == "Cannot specify -modify-index without -cas!\n"
    assert failed("kv", "delete", "-cas", "-modify-index=3", "-recurse", "k") == \
        "Cannot specify both -cas and -recurse!\n"
    assert failed("maint", "-enable", "-disable") == "Only one of -enable or -disable may be provided\n"
    assert failed("maint", "-reason=x") == "Reason may only be provided with -enable\n"
    assert failed("maint", "-service=web") == "Service requires either -enable or -disable\n"
    assert failed("catalog", "nodes", "extra") == "Too many arguments (expected 0, got 1)\n"
    assert failed("services", "register") == "Service registration requires at least one argument or flags.\n"
    assert failed("services", "deregister") == "Service deregistration requires at least one argument or -id.\n"
    assert failed("kv", "import") == "Error! Missing DATA argument\n"


def test_agent_unreachable(loopback: str, tmp_path: Path) -> None:
    addr = f"{loopback}.3:8500"
    refused = f"dial tcp {addr}: connect: connection refused"
    assert failed("kv", "get", "-http-addr", addr, "a b") == \
        f'Error querying Consul agent: Get "http://{addr}/v1/kv/a%20b": {refused}\n'
    assert failed("kv", "put", "k", "v", env={"CONSUL_HTTP_ADDR": f"http://{addr}"}) == \
        f'Error! Failed writing data: Put "http://{addr}/v1/kv/k": {refused}\n'
    assert failed("members", f"-http-addr={addr}") == \
        f'Error retrieving members: Get "http://{addr}/v1/agent/members?segment=_all": {refused}\n'
    assert failed("leave", "-http-addr", addr) == f'Error leaving: Put "http://{addr}/v1/agent/leave": {refused}\n'
    assert failed("info", "-http-addr", "ftp://x") == "Error connecting to Consul agent: Unknown protocol scheme: ftp\n"
    missing = tmp_path / "no-token"
    assert failed("kv", "get", "k", env={"CONSUL_HTTP_TOKEN_FILE": str(missing)}) == (
        f"Error connecting to Consul agent: Error loading token file: open {missing}: no such file or directory\n")
    socket_path = tmp_path / "agent.sock"
    assert failed("reload", "-http-addr", f"unix://{socket_path}").startswith(
        f'Error reloading: Put "http://{str(socket_path).replace("/", "%2F")}/v1/agent/reload": dial unix '
        f"{socket_path}: connect: no such file or directory")


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request `true` and remembers its path and headers, to observe what the CLI sends."""

    seen: list[tuple[str, str, dict[str, str]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append((self.command, self.path, dict(self.headers)))
        body = b"true"
        if self.command == "GET" and "keys=" in self.path:
            body = b'["p/k"]'
        elif self.command == "GET" and self.path.startswith("/v1/kv/"):
            body = b'[{"Key": "k", "Value": "dg==", "Flags": 0}]'
        elif self.command == "GET":
            body = b"[]"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def recorder(loopback: str) -> Iterator[str]:
    server = ThreadingHTTPServer((f"{loopback}.5", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{loopback}.5:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_request_wire_format(recorder: str, tmp_path: Path) -> None:
    """Token, datacenter and consistency flags reach the agent as Consul's Go client sends them."""
    token_file = tmp_path / "token"
    token_file.write_text("  from-file\n")
    env = {"CONSUL_HTTP_ADDR": recorder, "CONSUL_HTTP_TOKEN": "from-env"}
    assert consul("kv", "get", "-stale", "-datacenter=east", "/k", env=env).stdout == "v\n"
    assert consul("kv", "put", "-token=from-flag", "-flags=7", "k", "v", env=env).returncode == 0
    assert consul("kv", "delete", "-token-file", str(token_file), "-token=from-flag", "-recurse", "p/", env=env
                  ).stdout == "Success! Deleted keys with prefix: p/\n"
    assert consul("kv", "get", "-keys", "-separator=", "p", env={**env, "CONSUL_HTTP_TOKEN_FILE": str(token_file)}
                  ).stdout == "p/k\n"
    assert consul("catalog", "nodes", "-node-meta", "rack=r1", "-near=_agent", env=env).stderr == \
        "No nodes match the given query - try expanding your search.\n"
    seen = [(method, path, headers.get("X-Consul-Token")) for method, path, headers in _Recorder.seen]
    assert seen == [
        ("GET", "/v1/kv/k?dc=east&stale=", "from-env"),
        ("PUT", "/v1/kv/k?flags=7", "from-flag"),
        ("DELETE", "/v1/kv/p/?recurse=", "from-file"),
        ("GET", "/v1/kv/p?keys=", "from-file"),
        ("GET", "/v1/catalog/nodes?near=_agent&node-meta=rack%3Ar1", "from-env"),
    ]


def test_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"datacenter": "east", "data_dir": "/tmp/consulpy-validate"}')
    hcl = tmp_path / "more.hcl"
    hcl.write_text('node_name = "n1"\nservice {\n  name = "web"\n  port = 80\n}\n')
    assert ok("validate", str(good), str(hcl)) == "Configuration is valid!\n"
    assert ok("validate", "-quiet", str(tmp_path)) == ""
    bad = tmp_path / "bad.json"
    bad.write_text('{"bogus_key": 1}')
    stderr = failed("validate", str(bad))
    assert stderr.startswith("Config validation failed: ") and "bogus_key" in stderr
    assert failed("validate", str(tmp_path / "missing.json")).startswith("Config validation failed: ")
    assert failed("validate") == "Must specify at least one config file or directory\n"
    repeated = failed("validate", "-x", str(good))
    assert repeated.startswith("flag provided but not defined: -x\nUsage:\n  -quiet\n")
    assert repeated.endswith("\nflag provided but not defined: -x\n")


# --------------------------------------------------------------------------- against a dev agent


def _index(detailed: str, field: str) -> int:
    for line in detailed.splitlines():
        name, _, value = line.partition(" ")
        if name == field:
            return int(value)
    raise AssertionError(detailed)


def test_kv_commands(dev_agent: AgentProcess, tmp_path: Path) -> None:
    a = dev_agent
    assert ok("kv", "put", "app/name", "web", agent=a) == "Success! Data written to: app/name\n"
    assert ok("kv", "get", "app/name", agent=a) == "web\n"
    assert ok("kv", "get", "-http-addr", a.http.removeprefix("http://"), "/app/name", agent=a) == "web\n"
    assert failed("kv", "get", "app/missing", agent=a) == "Error! No key exists at: app/missing\n"
    assert ok("kv", "put", "app/empty", agent=a) == "Success! Data written to: app/empty\n"
    assert ok("kv", "get", "app/empty", agent=a) == "\n"
    ok("kv", "put", "app/stdin", "-", agent=a, stdin="line1\nline2\n")
    assert ok("kv", "get", "app/stdin", agent=a) == "line1\nline2\n\n"
    data = tmp_path / "data.bin"
    data.write_bytes(b"from a file")
    ok("kv", "put", "-flags=42", "app/file", f"@{data}", agent=a)
    ok("kv", "put", "-base64", "app/b64", "aGVsbG8=", agent=a)
    assert ok("kv", "get", "app/b64", agent=a) == "hello\n"
    assert failed("kv", "put", "-base64", "app/bad", "abc", agent=a) == \
        "Error! Cannot base 64 decode data: illegal base64 data at input byte 0\n"
    assert failed("kv", "put", "app/x", f"@{tmp_path / 'nope'}", agent=a) == \
        f"Error! Failed to read file: open {tmp_path / 'nope'}: no such file or directory\n"
    assert failed("kv", "put", "/lead", "v", agent=a) == \
        "Error! Failed writing data: Invalid key. Key must not begin with a '/': /lead\n"

    detailed = ok("kv", "get", "-detailed", "app/file", agent=a)
    index = _index(detailed, "ModifyIndex")
    assert detailed == (f"CreateIndex      {index}\nFlags            42\nKey              app/file\n"
                        f"LockIndex        0\nModifyIndex      {index}\nSession          -\n"
                        "Value            from a file\n")
    assert ok("kv", "get", "-recurse", "app/", agent=a) == \
        "app/b64:hello\napp/empty:\napp/file:from a file\napp/name:web\napp/stdin:line1\nline2\n\n"
    assert ok("kv", "get", "-recurse", "-base64", "app/n", agent=a) == "app/name:d2Vi\n"
    ok("kv", "put", "app/sub/deep", "1", agent=a)
    assert ok("kv", "get", "-keys", "app/", agent=a) == \
        "app/b64\napp/empty\napp/file\napp/name\napp/stdin\napp/sub/\n"
    assert ok("kv", "get", "-keys", "-separator=", "app/s", agent=a) == "app/stdin\napp/sub/deep\n"
    assert ok("kv", "get", "-keys", "-stale", "nothing/", agent=a) == ""

    assert failed("kv", "put", "-cas", "-modify-index", str(index + 1000), "app/file", "x", agent=a) == \
        "Error! Did not write to app/file: CAS failed\n"
    assert ok("kv", "put", "-cas", f"-modify-index={index}", "app/file", "new", agent=a) == \
        "Success! Data written to: app/file\n"
    assert failed("kv", "put", "-cas", "app/file", "x", agent=a) == "Must specify -modify-index with -cas!\n"
    changed = _index(ok("kv", "get", "-detailed", "app/file", agent=a), "ModifyIndex")
    assert failed("kv", "delete", "-cas", f"-modify-index={index}", "app/file", agent=a) == \
        "Error! Did not delete key app/file: CAS failed\n"
    assert ok("kv", "delete", "-cas", f"-modify-index={changed}", "app/file", agent=a) == \
        "Success! Deleted key: app/file\n"
    assert ok("kv", "delete", "app/name", agent=a) == "Success! Deleted key: app/name\n"
    assert ok("kv", "delete", "app/never-there", agent=a) == "Success! Deleted key: app/never-there\n"
    assert ok("kv", "delete", "-recurse", "app/s", agent=a) == "Success! Deleted keys with prefix: app/s\n"
    assert ok("kv", "get", "-keys", "app/", agent=a) == "app/b64\napp/empty\n"
    assert ok("kv", "put", "--", "-dash", "v", agent=a) == "Success! Data written to: -dash\n"


def test_kv_export_import(dev_agent: AgentProcess, tmp_path: Path) -> None:
    a = dev_agent
    ok("kv", "put", "-flags=5", "src/a", "<one & two>", agent=a)
    ok("kv", "put", "src/folder/", agent=a)
    exported = ok("kv", "export", "src/", agent=a)
    assert exported == ('[\n\t{\n\t\t"key": "src/a",\n\t\t"flags": 5,\n\t\t"value": "PG9uZSAmIHR3bz4="\n\t},\n'
                        '\t{\n\t\t"key": "src/folder/",\n\t\t"flags": 0,\n\t\t"value": ""\n\t}\n]\n')
    assert ok("kv", "export", "none/", agent=a) == "[]\n"
    dump = tmp_path / "dump.json"
    dump.write_text(exported)
    assert ok("kv", "import", "-prefix=copy", f"@{dump}", agent=a) == \
        "Imported: copy/src/a\nImported: copy/src/folder/\n"
    assert ok("kv", "get", "-detailed", "copy/src/a", agent=a).split("\n")[1] == "Flags            5"
    assert ok("kv", "import", "-", agent=a, stdin='[{"key": "in/k", "flags": 0, "value": "aGk="}]') == \
        "Imported: in/k\n"
    assert ok("kv", "get", "in/k", agent=a) == "hi\n"
    assert failed("kv", "import", "not json", agent=a).startswith("Cannot unmarshal data: ")
    assert failed("kv", "import", '{"key": "x"}', agent=a) == \
        "Cannot unmarshal data: json: cannot unmarshal object into Go value of type []*impexp.Entry\n"
    assert failed("kv", "import", '[{"key": "x", "value": "!!"}]', agent=a) == \
        "Error base 64 decoding value for key x: illegal base64 data at input byte 0\n"


def test_kv_locks(dev_agent: AgentProcess) -> None:
    a = dev_agent
    session = requests.put(f"{a.http}/v1/session/create", json={}, timeout=5).json()["ID"]
    assert ok("kv", "put", "-acquire", f"-session={session}", "lock", "held", agent=a) == \
        "Success! Lock acquired on: lock\n"
    assert f"\nSession          {session}\n" in ok("kv", "get", "-detailed", "lock", agent=a)
    other = requests.put(f"{a.http}/v1/session/create", json={}, timeout=5).json()["ID"]
    assert failed("kv", "put", "-acquire", "-session", other, "lock", agent=a) == "Error! Did not acquire lock\n"
    assert ok("kv", "put", "-release", f"-session={session}", "lock", agent=a) == "Success! Lock released on: lock\n"
    assert failed("kv", "put", "-release", f"-session={session}", "lock", agent=a) == "Error! Did not release lock\n"
    assert "\nSession          -\n" in ok("kv", "get", "-detailed", "lock", agent=a)


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_catalog_and_services(dev_agent: AgentProcess, tmp_path: Path) -> None:
    a = dev_agent
    node = requests.get(f"{a.http}/v1/catalog/nodes", timeout=5).json()[0]
    name = node["Node"]
    assert ok("catalog", "datacenters", agent=a) == "dc1\n"
    assert ok("catalog", "nodes", agent=a).split("\n") == [
        "Node" + " " * (len(name) - 2) + "ID        Address" + " " * (len(a.address) - 5) + "DC",
        f"{name}  {node['ID'].split('-')[0]}  {a.address}  dc1", ""]
    assert f"  {node['ID']}  " in ok("catalog", "nodes", "-detailed", agent=a)
    assert ok("catalog", "services", agent=a) == "consul\n"
    none = consul("catalog", "nodes", "-node-meta=rack=nowhere", agent=a)
    assert (none.returncode, none.stdout, none.stderr) == (
        0, "", "No nodes match the given query - try expanding your search.\n")

    definitions = tmp_path / "svc.hcl"
    definitions.write_text('service {\n  name = "web"\n  port = 80\n  tags = ["v1"]\n}\n'
                           'services {\n  id = "db1"\n  name = "db"\n  port = 5432\n}\n')
    assert ok("services", "register", "-tag=extra", str(definitions), agent=a) == \
        "Registered service: db\nRegistered service: web\n"
    assert ok("services", "register", "-name=cache", "-id=cache1", "-port=6379", "-tag=b", "-tag=a",
              "-meta=tier=hot", "-tagged-address=lan=10.1.2.3:6380", agent=a) == "Registered service: cache\n"
    local = requests.get(f"{a.http}/v1/agent/services", timeout=5).json()
    assert local["web"]["Tags"] == ["v1", "extra"] and local["db1"]["Port"] == 5432
    assert local["cache1"]["Meta"] == {"tier": "hot"}
    assert local["cache1"]["TaggedAddresses"]["lan"] == {"Address": "10.1.2.3", "Port": 6380}
    _wait_for(lambda: "web" in ok("catalog", "services", agent=a), "web in the catalog")
    assert ok("catalog", "services", "-tags", agent=a) == \
        "cache       a,b\nconsul      \ndb          extra\nweb         extra,v1\n"
    assert ok("catalog", "services", f"-node={name}", agent=a) == "cache\nconsul\ndb\nweb\n"
    assert ok("catalog", "nodes", "-service=web", agent=a).split("\n")[1].startswith(f"{name}  ")

    assert failed("services", "register", "-name=x", str(definitions), agent=a) == \
        "Service registration requires arguments or -id, not both.\n"
    assert failed("services", "register", "-name=x", "-tagged-address=lan=nohost", agent=a) == \
        "Invalid Tagged Address: address nohost: missing port in address\n"
    assert failed("services", "register", str(tmp_path / "none.hcl"), agent=a).startswith("Error: ")
    assert ok("services", "deregister", str(definitions), agent=a) == \
        "Deregistered service: db1\nDeregistered service: web\n"
    assert ok("services", "deregister", "-id", "cache1", agent=a) == "Deregistered service: cache1\n"
    assert sorted(requests.get(f"{a.http}/v1/agent/services", timeout=5).json()) == []


def test_agent_commands(dev_agent: AgentProcess) -> None:
    a = dev_agent
    name = requests.get(f"{a.http}/v1/agent/self", timeout=5).json()["Config"]["NodeName"]
    table = ok("members", agent=a).split("\n")
    assert table[0].split() == MEMBERS_HEADER
    assert table[1].split() == [name, f"{a.address}:8301", "alive", "server", "1.20.1", "2", "dc1", "default",
                                "<all>"]
    assert table[0].index("Address") == len(name) + 2
    detailed = ok("members", "-detailed", agent=a).split("\n")[1]
    assert "role=consul" in detailed and "segment=<all>" in detailed and "ap=default" in detailed
    empty = consul("members", "-status=fail.*", agent=a)
    assert (empty.returncode, empty.stdout, empty.stderr) == (2, "", "")

    info = ok("info", agent=a)
    assert info.startswith("agent:\n\t") and "\nbuild:\n\t" in info and "\tversion = 1.20.1\n" in info

    assert ok("maint", agent=a) == ""
    assert ok("maint", "-enable", "-reason", "disk swap", agent=a) == "Node maintenance is now enabled\n"
    assert ok("maint", agent=a) == f"Node:\n  Name:   {name}\n  Reason: disk swap\n\n"
    assert ok("maint", "-disable", agent=a) == "Node maintenance is now disabled\n"
    ok("services", "register", "-name=web", agent=a)
    assert ok("maint", "-enable", "-service=web", agent=a) == 'Service maintenance is now enabled for "web"\n'
    listed = ok("maint", agent=a)
    assert listed.startswith("Service:\n  ID:     web\n  Reason: ")
    assert ok("maint", "-disable", "-service=web", agent=a) == 'Service maintenance is now disabled for "web"\n'
    assert failed("maint", "-enable", "-service=nope", agent=a).startswith(
        "Error enabling service maintenance: Unexpected response code: 404 (")

    assert ok("reload", agent=a) == "Configuration reload triggered\n"
    stray = consul("leave", "now", agent=a)
    assert stray.returncode == 1 and stray.stderr == "Error found unexpected args: [now]\n"
    assert stray.stdout.startswith("Usage: consul leave [options]")
    assert ok("leave", agent=a) == "Graceful leave complete\n"
    assert a.proc is not None
    assert a.proc.wait(10) == 0
