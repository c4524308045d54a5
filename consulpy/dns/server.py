"""The DNS listeners (UDP and TCP on every client address, `ports.dns`), the answer cache and forwarding.

Servers and dev agents answer from their state store. Answers are cached as packed bytes keyed by (question
with the name lower-cased, EDNS size, transport) and dropped whenever the store's index, the configuration or
the wall-clock second (the SOA serial) changes; a hit only splices the query's ID, RD/CD bits and the name as
asked into the cached bytes. Answers built from a shuffle keep up to `SHUFFLE_VARIANTS` orderings and rotate.
Client agents hold no state: each question is a `Lookup` that fetches its reads from the servers
(`consulpy.dns.remote`), with no answer cache, and gets SERVFAIL when they cannot be had.
Names outside our zones go to the configured recursors, or get REFUSED when there are none.
Imports: stdlib, consulpy.dns, consulpy.agent (the composition root it serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from consulpy.dns import wire
from consulpy.dns.remote import FetchedReads, MissingRead, ServerReads
from consulpy.dns.resolver import DNSSettings, Question, Resolver
from consulpy.dns.wire import Query, Reply

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent
    from consulpy.agent.config import RuntimeConfig

log = logging.getLogger("consulpy.agent.dns")
agent_log = logging.getLogger("consulpy.agent")

SHUFFLE_VARIANTS = 16
MAX_CACHE_ENTRIES = 10_000
MAX_PENDING = 512  # queries awaiting recursors or the servers at once; more get SERVFAIL
MAX_READS_PER_QUESTION = 32  # a client agent's fetches for one question (hostname chains stay well below)
TCP_IDLE_TIMEOUT = 8.0  # miekg/dns's server defaults
TCP_READ_TIMEOUT = 2.0
TCP_QUERIES_PER_CONNECTION = 128
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


class Pending:
    """A reply that has to be awaited; the transport awaits `DNSFrontend.complete`."""

    __slots__ = ("data", "query")

    def __init__(self, data: bytes, query: Query) -> None:
        self.data = data
        self.query = query


class Forward(Pending):
    """A query that must go to the recursors."""

    __slots__ = ()


class Lookup(Pending):
    """A client agent's question, answered with reads fetched from the servers."""

    __slots__ = ()


class _Entry:
    """Cached replies (as templates) for one key; `full` once no more variants are wanted."""

    __slots__ = ("full", "turn", "variants", "varies")

    def __init__(self, varies: bool) -> None:
        self.variants: list[bytes] = []
        self.varies = varies
        self.turn = 0
        self.full = False

    def add(self, response: bytes) -> None:
        self.variants.append(wire.template(response))
        self.full = not self.varies or len(self.variants) >= SHUFFLE_VARIANTS

    def next(self) -> bytes:
        self.turn += 1
        return self.variants[self.turn % len(self.variants)]


class DNSFrontend:
    """The per-packet logic shared by both transports: cache, parse, resolve, render.

    `answer` is the role's path, chosen once: servers and dev agents read their store, client agents the servers.
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._config: RuntimeConfig | None = None
        self.settings = DNSSettings()
        self.resolver = Resolver(agent.store, self.settings)
        self._caches: tuple[dict[bytes, _Entry], dict[bytes, _Entry]] = ({}, {})
        self._index = -1
        self._second = -1
        local = agent.config.server or agent.config.dev
        self.remote = None if local else ServerReads(agent.catalog, agent.health)
        self.answer: Callable[[bytes, bool], bytes | Pending | None] = (
            self._answer_local if local else self._answer_remote)

    def refresh(self) -> None:
        """Pick up a reloaded configuration; drop cached answers once the catalog or the second moves."""
        config = self.agent.config
        if config is not self._config:
            self._config = config
            self.settings = DNSSettings.from_config(config)
            self.resolver = Resolver(self.agent.store, self.settings)
            self._index = -1
        second = int(time.time())
        index = self.agent.store.last_index
        if index != self._index or second != self._second:
            self._index = index
            self._second = second
            self._caches[0].clear()
            self._caches[1].clear()

    def _answer_local(self, data: bytes, tcp: bool) -> bytes | Pending | None:
        """The reply to one packet from the store, a `Forward`, or None to stay silent."""
        self.refresh()
        settings = self.settings
        found = wire.cache_key(data, settings.compress)
        cache = self._caches[tcp]
        entry = None
        if found is not None:
            entry = cache.get(found[0])
            if entry is not None and entry.full:
                return wire.splice(data, found[1], entry.next())
        query = self._parse(data) if found is None else wire.plain_query(data, found[1])
        if not isinstance(query, Query):
            return query
        try:
            reply = self.resolver.resolve(Question(query.labels, query.qtype, query.edns_size is not None))
            if reply.recurse:
                return Forward(data, query)
            response = self._render(query, reply, tcp)
        except Exception as exc:
            return self._failed(query, tcp, exc)
        if found is not None:
            if entry is None:
                if len(cache) >= MAX_CACHE_ENTRIES:
                    cache.clear()
                entry = cache[found[0]] = _Entry(reply.varies)
            entry.add(response)
        return response

    def _answer_remote(self, data: bytes, tcp: bool) -> bytes | Pending | None:
        """A client agent's `Lookup` for one packet, the reply to a malformed one, or None to stay silent."""
        self.refresh()
        query = self._parse(data)
        if not isinstance(query, Query):
            return query
        return Lookup(data, query)

    def _parse(self, data: bytes) -> Query | bytes | None:
        """The query in a packet, else FORMERR/NOTIMP bytes for a malformed one, or None to drop it."""
        try:
            return wire.parse_query(data)
        except wire.Drop:
            return None
        except wire.Reject as exc:
            log.debug("malformed query: error=%s", exc)
            return wire.reject_reply(data, exc.rcode)

    def _failed(self, query: Query, tcp: bool, exc: Exception) -> bytes:
        log.error("error answering query: name=%r type=%d error=%r", query.name, query.qtype, exc)
        return self.servfail(query, tcp, bool(self.settings.recursors))

    async def complete(self, pending: Pending, tcp: bool) -> bytes:
        if isinstance(pending, Lookup):
            return await self.lookup(pending, tcp)
        return await self.forward(pending, tcp)

    async def lookup(self, request: Lookup, tcp: bool) -> bytes:
        """Resolve over the reads fetched so far; fetch each read the resolver misses and resolve again.

        Any failed read (no server reachable, no leader) answers SERVFAIL, as Consul's client agents do.
        """
        remote = self.remote
        assert remote is not None, "lookups are made only on client agents"
        query = request.query
        question = Question(query.labels, query.qtype, query.edns_size is not None)
        reads = FetchedReads()
        while True:
            settings = self.settings
            try:
                reply = Resolver(reads, settings).resolve(question)
                if not reply.recurse:
                    return self._render(query, reply, tcp)
            except MissingRead as missing:
                key = missing.key
            except Exception as exc:
                return self._failed(query, tcp, exc)
            else:  # a name outside our zones: no read was needed
                return await self.forward(Forward(request.data, query), tcp)
            if len(reads.results) >= MAX_READS_PER_QUESTION:
                return self._failed(query, tcp, RuntimeError("too many catalog reads for one question"))
            try:
                reads.results[key] = await remote.fetch(key, settings)
            except Exception as exc:
                log.error('rpc error: error="%s"', exc)
                return self.servfail(query, tcp, bool(settings.recursors))

    def _render(self, query: Query, reply: Reply, tcp: bool) -> bytes:
        s = self.settings
        return wire.render(query, reply, tcp, s.compress, s.udp_answer_limit, s.enable_truncate)

    def servfail(self, query: Query, tcp: bool, recursion_available: bool = True) -> bytes:
        """Consul's SERVFAIL: not authoritative, the question echoed, OPT echoed."""
        return self._render(query, Reply(rcode=wire.SERVFAIL, authoritative=False,
                                         recursion_available=recursion_available), tcp)

    async def forward(self, request: Pending, tcp: bool) -> bytes:
        """Ask the recursors in order (or shuffled for `random`); SERVFAIL when none answers."""
        s = self.settings
        recursors = list(s.recursors)
        if s.recursor_random:
            random.shuffle(recursors)
        for position, (host, port) in enumerate(recursors):
            try:
                if tcp:
                    response = await asyncio.wait_for(_exchange_tcp(host, port, request.data), s.recursor_timeout)
                else:
                    response = await asyncio.wait_for(_exchange_udp(host, port, request.data), s.recursor_timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                log.debug("recursor failed: address=%s:%d error=%r", host, port, exc)
                continue
            rcode = response[3] & 0x0F
            if rcode not in (wire.NOERROR, wire.NXDOMAIN) and position < len(recursors) - 1:
                continue
            return response
        log.error("all resolvers failed for question: name=%r", request.query.name)
        return self.servfail(request.query, tcp)


async def _exchange_udp(host: str, port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, packet: bytes, addr: tuple[str, int]) -> None:
            if not reply.done() and len(packet) >= 12 and packet[:2] == data[:2] and packet[2] & 0x80:
                reply.set_result(packet)

        def error_received(self, exc: Exception) -> None:
            if not reply.done():
                reply.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        transport.sendto(data)
        return await reply
    finally:
        transport.close()


async def _exchange_tcp(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(len(data).to_bytes(2, "big") + data)
        await writer.drain()
        length = int.from_bytes(await reader.readexactly(2), "big")
        response = await reader.readexactly(length)
        if len(response) < 12 or response[:2] != data[:2]:
            raise ValueError("unexpected reply from recursor")
        return response
    finally:
        writer.close()


class _UDPProtocol(asyncio.DatagramProtocol):
    """Answers each datagram as it is read, and sends the answers of one read burst together after it.

    The loop reads the datagrams waiting on the socket in one go (uvloop up to 32) and calls
    `datagram_received` for each; their replies wait in `_outbox` until a callback queued behind the burst
    sends them back to back. A busy client is then woken once per burst rather than once per reply (the wake-up
    was the larger part of a send), and a lone query still goes out in the same loop turn.
    """

    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.answer = server.frontend.answer
        self.transport: asyncio.DatagramTransport | None = None
        self._outbox: list[tuple[bytes, tuple[str, int]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            out = self.answer(data, False)
        except Exception as exc:
            log.error("dropped query after an internal error: client=%s error=%r", addr[0], exc)
            return
        if out is None or self.transport is None:
            return
        if type(out) is bytes:
            if not self._outbox:
                asyncio.get_running_loop().call_soon(self._send_outbox)
            self._outbox.append((out, addr))
        else:
            self.server.defer_udp(out, self.transport, addr)  # type: ignore[arg-type]

    def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for out, addr in outbox:
            transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp socket error: error=%r", exc)


class DNSServer:
    """Binds `ports.dns` on every DNS address (addresses.dns, else client_addr) for UDP and TCP."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.frontend = DNSFrontend(agent)
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0

    def hosts(self) -> list[str]:
        config = self.agent.config
        return list(config.addresses.dns) or self.agent.client_hosts()

    async def start(self) -> None:
        port = self.agent.config.ports.dns
        if port <= 0:
            return
        self.frontend.refresh()
        loop = asyncio.get_running_loop()
        try:
            for host in self.hosts():
                shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                network = "udp"
                try:
                    transport, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self),
                                                                       local_addr=(host, port))
                    self._udp.append(transport)  # type: ignore[arg-type]
                    agent_log.info("Started DNS server: address=%s network=udp", shown)
                    network = "tcp"
                    server = await asyncio.start_server(self._serve_tcp, host, port, backlog=1024,
                                                        reuse_address=True)
                    self._tcp.append(server)
                    agent_log.info("Started DNS server: address=%s network=tcp", shown)
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    raise OSError(f"error starting DNS server: listen {network} {shown}: {reason}") from None
        except OSError:
            await self.stop()
            raise

    async def stop(self) -> None:
        for transport in self._udp:
            transport.close()
        self._udp.clear()
        for server in self._tcp:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._tcp:
            await server.wait_closed()
        self._tcp.clear()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def defer_udp(self, request: Pending, transport: asyncio.DatagramTransport, addr: tuple[str, int]) -> None:
        if self._pending >= MAX_PENDING:
            transport.sendto(self.frontend.servfail(request.query, False), addr)
            return

        async def run() -> None:
            try:
                response = await self.frontend.complete(request, False)
            finally:
                self._pending -= 1
            if not transport.is_closing():
                transport.sendto(response, addr)

        self._pending += 1
        self._track(asyncio.ensure_future(run()))

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._track(task)  # type: ignore[arg-type]
        try:
            for _ in range(TCP_QUERIES_PER_CONNECTION):
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    data = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), TCP_READ_TIMEOUT)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    out = self.frontend.answer(data, True)
                    if isinstance(out, Pending):
                        out = await self.frontend.complete(out, True)
                except Exception as exc:
                    log.error("dropped query after an internal error: error=%r", exc)
                    continue
                if out is None or len(out) > 0xFFFF:
                    continue
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
