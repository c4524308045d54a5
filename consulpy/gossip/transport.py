"""The asyncio driver around one sans-IO gossip core (a `Memberlist`, or anything driven the same way, such
as the Serf layer): UDP (asyncio-dgram) and TCP on one address and port, the core's timers, packets and
stream exchanges, and the envelope (encryption, label, CRC). Events go up through one synchronous callback,
`on_event`, in order; operations go down through `apply`. Imports: stdlib, asyncio-dgram, this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import math
import os
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, cast

import asyncio_dgram

from consulpy.gossip.config import Config
from consulpy.gossip.events import LeaveComplete, LogLine, Packet, StreamRequest
from consulpy.gossip.keyring import Keyring
from consulpy.gossip.messages import Address, PushPull, decode_stream
from consulpy.gossip.security import (
    FRAME_ERROR,
    FRAME_HEADER,
    FRAME_MESSAGE,
    HAS_LABEL,
    Envelope,
    EnvelopeError,
)
from consulpy.gossip.state import Memberlist

# The core never builds a packet larger than its udp_buffer_size (1,400 bytes by default); a datagram
# many times that size is not gossip, and decrypting and decoding it would only cost time.
MAX_PACKET_SIZE = 16 * 1024
# A push-pull carries every member plus the layer above's state: memberlist's limit for it.
MAX_STREAM_FRAME = 20 * 1024 * 1024
# Inbound streams served at once; more are closed on accept, so a flood of connections cannot pin
# memory for MAX_STREAM_FRAME each.
MAX_INBOUND_STREAMS = 64
# Packets waiting for the socket; beyond this they are dropped (gossip is best effort and retransmits).
SEND_QUEUE_SIZE = 4096

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERR": logging.ERROR}

# A log line that already names its subsystem ("serf: ...") is written as it is; the core's get "memberlist: ".
_SUBSYSTEM = re.compile(r"^[a-z]+: ")


class CoreOutput(Protocol):
    @property
    def packets(self) -> Sequence[Packet]: ...
    @property
    def streams(self) -> Sequence[StreamRequest]: ...
    @property
    def events(self) -> Sequence[object]: ...


class GossipCore(Protocol):
    """How the transport drives a core: `Memberlist`, or the Serf layer around one."""

    def poll(self) -> CoreOutput: ...
    def next_deadline(self) -> float | None: ...
    def tick(self, now: float) -> None: ...
    def receive_packet(self, source: Address, data: bytes, now: float) -> None: ...
    def handle_stream(self, source: Address, data: bytes, now: float) -> bytes | None: ...
    def stream_reply(self, stream_id: int, data: bytes | None, now: float) -> None: ...
    def join(self, addresses: list[Address], now: float) -> None: ...
    def leave(self, now: float) -> None: ...


# (the transport's config, with the envelope's share taken off udp_buffer_size; this member's address; now)
CoreFactory = Callable[[Config, Address, float], GossipCore]
EventCallback = Callable[[Any], None]


class JoinError(Exception):
    """No address could be joined; `str()` is the text Consul gives (a go-multierror list)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(format_errors(errors))
        self.errors = errors


def format_errors(errors: list[str]) -> str:
    """Several errors as go-multierror prints them."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def join_host_port(host: str, port: int) -> Address:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: Address) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); ValueError when it is neither."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"address {address}: missing port in address")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"address {address}: invalid port")
    return host, port


def _with_default_port(text: str, default_port: int) -> str:
    """memberlist's ensurePort: a join address without a port gets the bind port."""
    if text.startswith("[") and "]:" in text:
        return text
    if text.startswith("["):
        return f"{text}:{default_port}"
    if text.count(":") == 1:
        return text
    return join_host_port(text, default_port)


class GossipTransport:
    """One gossip pool (the serf LAN on 8301 or the WAN on 8302) on one address and port.

    `start()` binds and runs; `join(addresses)` push-pulls with seeds and returns how many answered;
    `leave(timeout)` announces a graceful leave; `stop()` closes everything at once (a hard stop, as
    a crash looks to the others). What was dropped is counted in `stats` (and in the core's `stats`).
    """

    def __init__(
        self,
        config: Config,
        name: str,
        bind_addr: str,
        port: int,
        *,
        advertise_addr: str | None = None,
        keyring: Keyring | None = None,
        label: str = "",
        verify_incoming: bool = True,
        verify_outgoing: bool = True,
        core_factory: CoreFactory | None = None,
        on_event: EventCallback | None = None,
        leave_events: tuple[type, ...] = (LeaveComplete,),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """`port` 0 picks a free port for both UDP and TCP. `advertise_addr` is the address others reach
        this member at (default: `bind_addr`, which must then be a specific address). Without
        `core_factory` the core is a plain `Memberlist`. `leave` waits for one of `leave_events` (the
        Serf layer passes its LeaveDone)."""
        self.name = name
        self.bind_addr = bind_addr
        self.port = port
        self.advertise_addr = advertise_addr or bind_addr
        if ipaddress.ip_address(self.advertise_addr).is_unspecified:
            raise ValueError(f"cannot advertise {self.advertise_addr}: give an advertise address")
        self.envelope = Envelope(keyring if keyring is not None else Keyring(), label,
                                 verify_incoming, verify_outgoing)
        # The core fills packets up to its budget; the envelope's bytes come out of it so that what goes
        # on the wire stays within the configured size.
        self.config = dataclasses.replace(
            config, udp_buffer_size=config.udp_buffer_size - self.envelope.packet_overhead())
        self.on_event = on_event
        self.leave_events = leave_events
        self.stats: Counter[str] = Counter()
        self.log = logger or logging.getLogger("consulpy.agent.memberlist.lan")
        self._rng = rng or random.Random()
        self._core_factory = core_factory or self._memberlist
        self._clock = clock
        self._core: GossipCore | None = None
        self._udp: asyncio_dgram.DatagramServer | None = None
        self._server: asyncio.Server | None = None
        unspecified = ipaddress.ip_address(bind_addr).is_unspecified
        self._source: tuple[str, int] | None = None if unspecified else (bind_addr, 0)
        self._send_queue: asyncio.Queue[tuple[tuple[str, int], bytes]] = asyncio.Queue(SEND_QUEUE_SIZE)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._sleeping_until = math.inf
        self._join_waiters: dict[int, asyncio.Future[str | None]] = {}
        self._leave_waiters: list[asyncio.Future[None]] = []
        self._leaving = False
        self._left = False
        self._running = False

    def _memberlist(self, config: Config, address: Address, now: float) -> Memberlist:
        return Memberlist(config, self.name, address, rng=self._rng, now=now)

    # ---- lifecycle ------------------------------------------------------------------------------------

    @property
    def core(self) -> Any:
        """The core this transport drives (a `Memberlist` unless `core_factory` built something else)."""
        if self._core is None:
            raise RuntimeError("gossip transport is not started")
        return self._core

    @property
    def keyring(self) -> Keyring:
        """The keys in use; installing, using and removing keys on it takes effect at once."""
        return self.envelope.keyring

    @property
    def address(self) -> Address:
        """This member's gossip address as the others know it."""
        return join_host_port(self.advertise_addr, self.port)

    async def start(self) -> None:
        """Bind TCP, then UDP on the same port, create the core and start its loops."""
        self._server = await asyncio.start_server(self._serve_stream, self.bind_addr, self.port,
                                                  reuse_address=True, limit=64 * 1024)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        try:
            self._udp = await asyncio_dgram.bind((self.bind_addr, self.port))
        except OSError:
            self._server.close()
            raise
        self._core = self._core_factory(self.config, self.address, self._clock())
        self._running = True
        for loop in (self._run_timers(), self._receive_packets(), self._send_packets()):
            self._spawn(loop)
        self._flush()

    async def stop(self) -> None:
        """Close sockets and stop every task now, without telling anyone (graceful is `leave` first)."""
        if not self._running:
            return
        self._running = False
        if self._server is not None:
            self._server.close()
        tasks = [*self._tasks, *self._inbound]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._udp is not None:
            self._udp.close()
            # The socket itself is closed on the loop's next iteration; let it be, so the port is free
            # when stop returns.
            await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
        for waiter in self._join_waiters.values():
            if not waiter.done():
                waiter.set_result("transport stopped")
        self._join_waiters.clear()

    # ---- what the layer above calls -------------------------------------------------------------------

    async def join(self, addresses: list[str]) -> int:
        """Push-pull with each address (`host`, `host:port`, optionally `name/` first; hostnames resolve
        to all their addresses) and return how many answered. JoinError when none did."""
        errors: list[str] = []
        targets: list[Address] = []
        for existing in addresses:
            try:
                targets.extend(await self._resolve(existing))
            except (OSError, ValueError) as e:
                errors.append(f"Failed to resolve {existing}: {e}")
        self.core.join(targets, self._clock())
        # The push-pulls the core starts for a join are the streams it asks for in this very step.
        loop = asyncio.get_running_loop()
        waiting: list[tuple[Address, asyncio.Future[str | None]]] = []
        for request in self._flush():
            if request.address in targets:
                future: asyncio.Future[str | None] = loop.create_future()
                self._join_waiters[request.id] = future
                waiting.append((request.address, future))
        joined = 0
        for address, future in waiting:
            # Always answered: every stream exchange ends by its deadline, and stop() answers the rest.
            failure = await future
            if failure is None:
                joined += 1
            else:
                errors.append(f"Failed to join {address}: {failure}")
        if joined == 0 and errors:
            raise JoinError(errors)
        return joined

    async def leave(self, timeout: float) -> bool:
        """Announce a graceful leave and wait until it has been gossiped; False if `timeout` passed first."""
        if self._left:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leave_waiters.append(future)
        if not self._leaving:
            self._leaving = True
            self.core.leave(self._clock())
            self._flush()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        return True

    def apply(self, operation: Callable[[float], object]) -> None:
        """Run an operation on the core with the current time (`lambda now: core.broadcast(...)`), then
        send and dispatch what it produced."""
        operation(self._clock())
        self._flush()

    # ---- the core's output ----------------------------------------------------------------------------

    def _flush(self) -> list[StreamRequest]:
        """Act on everything the core produced, then wake the timer loop if its next deadline moved earlier.
        Returns the stream exchanges started."""
        if not self._running:
            return []
        out = self.core.poll()
        for packet in out.packets:
            self._queue_packet(packet.address, packet.data)
        for request in out.streams:
            self._spawn(self._exchange(request))
        for event in out.events:
            self._dispatch(event)
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wake.set()
        return list(out.streams)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, LogLine):
            text = event.text if _SUBSYSTEM.match(event.text) else f"memberlist: {event.text}"
            self.log.log(_LEVELS.get(event.level, logging.INFO), "%s", text)
            return
        if isinstance(event, self.leave_events):
            self._left = True
            for waiter in self._leave_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._leave_waiters.clear()
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                self.log.exception("memberlist: event handler failed on %s", type(event).__name__)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_timers(self) -> None:
        """Sleep until the core's next deadline (or until new input moved it earlier), then tick it."""
        while True:
            deadline = self.core.next_deadline()
            self._sleeping_until = math.inf if deadline is None else deadline
            self._wake.clear()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            try:
                self.core.tick(self._clock())
                self._flush()
            except Exception:
                # A bug, but one that must not stop failure detection for good: log it and keep ticking.
                self.log.exception("memberlist: timer failed")

    # ---- packets --------------------------------------------------------------------------------------

    def _queue_packet(self, address: Address, data: bytes) -> None:
        try:
            destination = split_host_port(address)
        except ValueError:
            self.stats["packets_bad_address"] += 1
            return
        try:
            self._send_queue.put_nowait((destination, self.envelope.seal_packet(data)))
        except asyncio.QueueFull:
            self.stats["packets_dropped"] += 1

    async def _send_packets(self) -> None:
        assert self._udp is not None
        while True:
            destination, data = await self._send_queue.get()
            try:
                await self._udp.send(data, destination)
            except asyncio_dgram.TransportClosed:
                return
            except OSError:
                # asyncio-dgram raises an earlier send's error (a refused sendto, an ICMP report) on the next
                # call, before sending it: count that, and still send this packet.
                self.stats["packet_send_errors"] += 1
                with contextlib.suppress(OSError):
                    await self._udp.send(data, destination)
            self.stats["packets_sent"] += 1

    async def _receive_packets(self) -> None:
        assert self._udp is not None
        while True:
            try:
                data, source = await self._udp.recv()
            except asyncio_dgram.TransportClosed:
                return
            except OSError:
                # An ICMP error from an earlier send, reported on this socket: nothing to do with this read.
                self.stats["udp_errors"] += 1
                continue
            host, port = cast(tuple[str, int], source)[:2]
            self._ingest_packet(data, join_host_port(host, port))

    def _ingest_packet(self, data: bytes, source: Address) -> None:
        self.stats["packets_received"] += 1
        if len(data) > MAX_PACKET_SIZE:
            self.stats["packets_oversized"] += 1
            self.log.error("memberlist: Dropping packet of %d bytes from=%s", len(data), source)
            return
        try:
            payload = self.envelope.open_packet(data)
        except EnvelopeError as e:
            self.stats[e.counter] += 1
            self.log.error("memberlist: Decrypt packet failed: %s from=%s", e.reason, source)
            return
        try:
            self.core.receive_packet(source, payload, self._clock())
        except Exception as e:
            # The core validates what it decodes; input that still trips it is dropped like any other.
            self.stats["packets_failed"] += 1
            self.log.error("memberlist: Failed to handle packet from=%s: %r", source, e)
        self._flush()

    # ---- streams we start -----------------------------------------------------------------------------

    async def _exchange(self, request: StreamRequest) -> None:
        """Perform one stream exchange and feed its reply, or None, back to the core by its deadline."""
        reply: bytes | None = None
        failure: str | None = None
        progress = [f"dial tcp {request.address}"]
        try:
            host, port = split_host_port(request.address)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout_at(loop.time() + max(0.0, request.deadline - self._clock())):
                reply = await self._request(host, port, request.data, progress)
        except TimeoutError:
            failure = f"{progress[0]}: i/o timeout"
        except asyncio.IncompleteReadError:
            failure = "EOF"
        except EnvelopeError as e:
            self.stats[e.counter] += 1
            failure = e.reason
        except ValueError as e:
            failure = str(e)
        except OSError as e:
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            stage = "connect: " if progress[0].startswith("dial") else ""
            failure = f"{progress[0]}: {stage}{reason}"
        if reply is None:
            self.stats["streams_failed"] += 1
        try:
            self.core.stream_reply(request.id, reply, self._clock())
        except Exception as e:
            self.stats["streams_failed_in_core"] += 1
            self.log.error("memberlist: Failed to handle stream reply from=%s: %r", request.address, e)
            failure = failure or f"Failed to handle remote state: {e}"
        self._flush()
        waiter = self._join_waiters.pop(request.id, None)
        if waiter is not None and not waiter.done():
            if failure is None and not isinstance(decode_stream(reply or b""), PushPull):
                failure = "remote state is not a push/pull message"
            waiter.set_result(failure)

    async def _request(self, host: str, port: int, data: bytes, progress: list[str]) -> bytes:
        """Connect (from our bind address), send one frame, and read the reply frame's body."""
        reader, writer = await asyncio.open_connection(host, port, local_addr=self._source, limit=64 * 1024)
        try:
            local = writer.get_extra_info("sockname")
            progress[0] = f"read tcp {join_host_port(local[0], local[1])}->{join_host_port(host, port)}"
            writer.write(self.envelope.stream_prefix() + self.envelope.seal_frame(FRAME_MESSAGE, data))
            await writer.drain()
            self.stats["streams_sent"] += 1
            kind, body = await self._read_frame(reader, (await reader.readexactly(1))[0])
            if kind == FRAME_ERROR:
                raise EnvelopeError(f"Remote error: {body.decode('utf-8', 'replace')}", "streams_remote_error")
            return body
        finally:
            writer.close()

    async def _read_frame(self, reader: asyncio.StreamReader, kind: int) -> tuple[int, bytes]:
        """The rest of a frame whose kind byte was `kind`: bounded, then decrypted as the envelope says."""
        length = int.from_bytes(await reader.readexactly(FRAME_HEADER.size - 1), "big")
        if length > MAX_STREAM_FRAME:
            raise EnvelopeError(f"remote node state is larger than limit ({length})", "streams_oversized")
        body = await reader.readexactly(length)
        return self.envelope.open_frame(kind, length, body)

    # ---- streams others start -------------------------------------------------------------------------

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._running or len(self._inbound) >= MAX_INBOUND_STREAMS:
            self.stats["streams_rejected"] += 1
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._inbound.add(task)
        peer = writer.get_extra_info("peername")
        source = join_host_port(peer[0], peer[1])
        self.stats["streams_received"] += 1
        try:
            async with asyncio.timeout(self.config.tcp_timeout):
                await self._answer(reader, writer, source)
        except EnvelopeError as e:
            self.stats[e.counter] += 1
            self.log.error("memberlist: Failed to receive stream: %s from=%s", e.reason, source)
            if not e.counter.endswith("bad_label"):
                with contextlib.suppress(OSError):
                    writer.write(self.envelope.seal_frame(FRAME_ERROR, e.reason.encode()))
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            self.stats["streams_incomplete"] += 1
        finally:
            writer.close()
            self._inbound.discard(task)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: Address) -> None:
        first = (await reader.readexactly(1))[0]
        label = ""
        if first == HAS_LABEL:
            size = (await reader.readexactly(1))[0]
            if size == 0:
                raise EnvelopeError("label header cannot be empty when present", "streams_bad_label")
            label = (await reader.readexactly(size)).decode("utf-8", "replace")
            first = (await reader.readexactly(1))[0]
        self.envelope.check_stream_label(label)
        kind, body = await self._read_frame(reader, first)
        if kind != FRAME_MESSAGE:
            raise EnvelopeError("unexpected error frame", "streams_malformed")
        try:
            reply = self.core.handle_stream(source, body, self._clock())
        except Exception as e:
            self.stats["streams_failed_in_core"] += 1
            self.log.error("memberlist: Failed to handle stream from=%s: %r", source, e)
            reply = None
        self._flush()
        if reply is not None:
            writer.write(self.envelope.seal_frame(FRAME_MESSAGE, reply))
            await writer.drain()

    # ---- addresses ------------------------------------------------------------------------------------

    async def _resolve(self, existing: str) -> list[Address]:
        """Every address a join target names, with the bind port when it gives none."""
        slash = existing.find("/")
        if slash == 0:
            raise ValueError("empty node name provided")
        text = _with_default_port(existing[slash + 1:], self.port)
        host, port = split_host_port(text)
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            return [join_host_port(host, port)]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise OSError(f"lookup {host}: no such host") from e
        resolved: list[Address] = []
        for info in infos:
            address = join_host_port(str(info[4][0]), port)
            if address not in resolved:
                resolved.append(address)
        return resolved
