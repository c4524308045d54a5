"""The CLI's HTTP client: the Go api client's rules for address, scheme, token, TLS and `dc`, over http.client.

Failures read as the Go client's (`Unexpected response code: 404 (…)`, `Get "…": dial tcp …: connect:
connection refused`) because Consul's CLI prints them verbatim after its own prefix.
Imports: stdlib, consulpy.cli.goflags.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from consulpy.cli.goflags import FlagSet
from consulpy.gostrconv import parse_bool

DEFAULT_ADDRESS = "127.0.0.1:8500"
DIAL_TIMEOUT = 30.0
_PATH_SAFE = "/$&+,:;=@"


class ApiError(Exception):
    """A request that failed; the message is the Go api client's error text."""


def add_client_flags(flags: FlagSet) -> None:
    """Consul's HTTPFlags.ClientFlags: where the agent is and how to authenticate to it."""
    flags.add("http-addr", "The `address` and port of the Consul HTTP agent (IP or DNS name, with the port). "
                           "Defaults to CONSUL_HTTP_ADDR, else http://127.0.0.1:8500; https:// selects TLS.")
    flags.add("token", "ACL token for the request; defaults to CONSUL_HTTP_TOKEN, else the agent's own token.")
    flags.add("token-file", "File holding the ACL token for the request; takes precedence over -token and "
                            "CONSUL_HTTP_TOKEN. Also read from CONSUL_HTTP_TOKEN_FILE.")
    flags.add("ca-file", "CA certificate file for TLS to the agent (also CONSUL_CACERT).")
    flags.add("ca-path", "Directory of CA certificates for TLS to the agent (also CONSUL_CAPATH).")
    flags.add("client-cert", "Client certificate for TLS when the agent verifies clients (also CONSUL_CLIENT_CERT).")
    flags.add("client-key", "Client key for TLS when the agent verifies clients (also CONSUL_CLIENT_KEY).")
    flags.add("tls-server-name", "Server name sent as SNI over TLS (also CONSUL_TLS_SERVER_NAME).")


def add_server_flags(flags: FlagSet) -> None:
    """Consul's HTTPFlags.ServerFlags: which datacenter answers and whether any server may."""
    flags.add("datacenter", "Datacenter to query; defaults to the agent's own datacenter.")
    flags.add("stale", "Let any server, not only the leader, answer the read; faster but possibly stale.",
              kind="bool", default=False)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError as exc:
            raise ApiError(f"error decoding response: {exc}") from None


@dataclass
class TLSSettings:
    ca_file: str = ""
    ca_path: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure: bool = False


def _env_bool(environ: Mapping[str, str], name: str) -> bool | None:
    value = environ.get(name, "")
    if not value:
        return None
    return parse_bool(value)


def client_from_flags(values: Mapping[str, Any], explicit: set[str], environ: Mapping[str, str]) -> Client:
    """The Go api's DefaultConfig (environment) overlaid with the flags the user set, then NewClient."""

    def pick(flag: str, env: str) -> str:
        if flag in explicit:
            return str(values[flag])
        return environ.get(env, "")

    tls = TLSSettings(pick("ca-file", "CONSUL_CACERT"), pick("ca-path", "CONSUL_CAPATH"),
                      pick("client-cert", "CONSUL_CLIENT_CERT"), pick("client-key", "CONSUL_CLIENT_KEY"),
                      pick("tls-server-name", "CONSUL_TLS_SERVER_NAME"),
                      _env_bool(environ, "CONSUL_HTTP_SSL_VERIFY") is False)
    scheme = "https" if _env_bool(environ, "CONSUL_HTTP_SSL") else "http"
    address = pick("http-addr", "CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
    token = pick("token", "CONSUL_HTTP_TOKEN")
    token_file = pick("token-file", "CONSUL_HTTP_TOKEN_FILE")
    auth = environ.get("CONSUL_HTTP_AUTH", "")
    datacenter = str(values["datacenter"]) if "datacenter" in explicit else ""
    return Client(scheme, address, token, token_file, datacenter, auth, tls)


class Client:
    """Talks to one agent. Construction fails (ApiError) as the Go NewClient would: bad scheme, token file, TLS."""

    def __init__(self, scheme: str, address: str, token: str, token_file: str, datacenter: str, auth: str,
                 tls: TLSSettings) -> None:
        self.scheme = scheme
        self.unix_path = ""
        self.prefix = ""
        if "://" in address:
            given, rest = address.split("://", 1)
            if given == "https":
                self.scheme = "https"
            elif given == "unix":
                self.unix_path = rest
            elif given != "http":
                raise ApiError(f"Unknown protocol scheme: {given}")
            address = rest
            if not self.unix_path and "/" in address:
                address, tail = address.split("/", 1)
                self.prefix = "/" + tail
        self.address = address
        if token_file:
            try:
                with open(token_file, encoding="utf-8", errors="replace") as handle:
                    from_file = handle.read().strip()
            except OSError as exc:
                raise ApiError(f"Error loading token file: open {token_file}: {_errno_text(exc)}") from None
            token = from_file or token
        self.token = token
        self.datacenter = datacenter
        self.auth = auth
        self.tls = tls
        self.context = self._tls_context() if self.scheme == "https" else None

    def _tls_context(self) -> ssl.SSLContext:
        tls = self.tls
        try:
            context = ssl.create_default_context(cafile=tls.ca_file or None, capath=tls.ca_path or None)
            if tls.cert_file or tls.key_file:
                context.load_cert_chain(tls.cert_file, tls.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ApiError(f"Error loading TLS files: {exc}") from None
        if tls.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # ----------------------------------------------------------------------- transport

    def _host_port(self) -> tuple[str, int]:
        """Split the address as Go's dialer does (a missing port means the scheme's default)."""
        default = 443 if self.scheme == "https" else 80
        if self.address.startswith("["):
            host, _, tail = self.address[1:].partition("]")
            text = tail[1:] if tail.startswith(":") else ""
        elif self.address.count(":") > 1:
            raise ApiError(f"dial tcp: address {self.address}: too many colons in address")
        else:
            host, _, text = self.address.partition(":")
        if not text:
            return host, default
        if not text.isdigit() or int(text) > 65535:
            raise ApiError(f"dial tcp: address {self.address}: invalid port")
        return host, int(text)

    def url(self, target: str) -> str:
        """The request's URL as Go prints it in errors; `target` is the escaped path and query."""
        host = quote(self.unix_path, safe="") if self.unix_path else self.address
        return f"{self.scheme}://{host}{target}"

    def _dial(self) -> socket.socket:
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(DIAL_TIMEOUT)
            try:
                sock.connect(self.unix_path)
            except OSError as exc:
                sock.close()
                raise ApiError(f"dial unix {self.unix_path}: connect: {_errno_text(exc)}") from None
        else:
            host, port = self._host_port()
            try:
                sock = socket.create_connection((host, port), DIAL_TIMEOUT)
            except socket.gaierror:
                raise ApiError(f"dial tcp: lookup {host}: no such host") from None
            except TimeoutError:
                raise ApiError(f"dial tcp {self.address}: i/o timeout") from None
            except OSError as exc:
                raise ApiError(f"dial tcp {self.address}: connect: {_errno_text(exc)}") from None
        if self.context is not None:
            server_name = self.tls.server_name or self._host_port()[0]
            try:
                sock = self.context.wrap_socket(sock, server_hostname=server_name)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise ApiError(f"tls: {exc}") from None
        sock.settimeout(None)
        return sock

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
                body: bytes | None = None, content_type: str = "") -> Response:
        """One request; connection failures raise ApiError worded as Go's *url.Error."""
        query_params = list(params or [])
        if self.datacenter:
            query_params.append(("dc", self.datacenter))
        query = urlencode(sorted(query_params, key=lambda kv: kv[0]))
        escaped = quote(self.prefix + path, safe=_PATH_SAFE)
        target = escaped + (f"?{query}" if query else "")
        headers = {}
        if self.token:
            headers["X-Consul-Token"] = self.token
        if self.auth:
            headers["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        if content_type:
            headers["Content-Type"] = content_type
        op = method[:1] + method[1:].lower()
        where = f'{op} "{self.url(target)}"'
        try:
            sock = self._dial()
        except ApiError as exc:
            raise ApiError(f"{where}: {exc}") from None
        headers["Host"] = "localhost" if self.unix_path else self.address
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        try:
            conn.request(method, target, body=body, headers=headers)
            reply = conn.getresponse()
            return Response(reply.status, reply.headers, reply.read())
        except (http.client.RemoteDisconnected, http.client.IncompleteRead):
            raise ApiError(f"{where}: EOF") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(f"{where}: {_errno_text(exc) if isinstance(exc, OSError) else exc}") from None
        finally:
            conn.close()

    def call(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
             body: bytes | None = None, content_type: str = "") -> Response:
        """A request that must answer 200, as the Go client's requireOK."""
        reply = self.request(method, path, params, body, content_type)
        if reply.status != 200:
            raise _unexpected(reply)
        return reply

    def find(self, path: str, params: list[tuple[str, str]] | None = None) -> Response | None:
        """A GET where 404 means "nothing there" (None), as the Go client's KV and catalog reads."""
        reply = self.request("GET", path, params)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise _unexpected(reply)
        return reply

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        return self.call("GET", path, params).json()

    def put_json(self, path: str, obj: Any = None, params: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(obj).encode() if obj is not None else None
        return self.call("PUT", path, params, body, "application/json" if body is not None else "")


def _unexpected(reply: Response) -> ApiError:
    text = reply.body.decode("utf-8", "replace").strip()
    return ApiError(f"Unexpected response code: {reply.status} ({text})")


def _errno_text(exc: OSError) -> str:
    """Go's lower-case syscall error text, e.g. `connection refused`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[:1].lower() + reason[1:]
