"""asyncio TCP transport for Raft messages on the server port: length-prefixed msgpack frames, one outbound
connection per peer (reconnecting, bounded queue that drops when full: Raft retransmits; its first byte marks
it as a Raft stream for the server port's dispatcher) and an inbound stream handler handing decoded
`Message`s to a callback. Bad or oversize frames close the connection and are counted.
Imports: stdlib, consulpy.codec, consulpy.raft.messages, consulpy.server.rpc (framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from consulpy.codec import CodecError, decode, encode
from consulpy.raft.messages import Message
from consulpy.server.rpc import RPC_RAFT, frame, read_frame

MAX_FRAME = 64 * 1024 * 1024
QUEUE_SIZE = 1024
_CONNECT_TIMEOUT = 1.0
_WRITE_TIMEOUT = 5.0
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 1.0
_DIRECT_LIMIT = 256 * 1024

log = logging.getLogger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """`ip:port` → (ip, port)."""
    host, _, port = address.rpartition(":")
    return host, int(port)


class _Peer:
    """The outbound side of one peer: a queue drained by a task that keeps one connection open.

    While the connection is up, nothing is queued and its socket buffer is small, a frame is written at once
    instead of waiting for the pump task's turn on the loop: one scheduling hop less per message.
    """

    def __init__(self, transport: RaftTransport, address: str) -> None:
        self.transport = transport
        self.address = address
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(transport.queue_size)
        self.writer: asyncio.StreamWriter | None = None
        self.task = asyncio.create_task(self._run())

    def send(self, data: bytes) -> None:
        writer = self.writer
        if (writer is not None and self.queue.empty() and not writer.transport.is_closing()
                and writer.transport.get_write_buffer_size() < _DIRECT_LIMIT):
            try:
                writer.write(data)
                return
            except RuntimeError:
                self.writer = None
        self.queue.put_nowait(data)

    async def _run(self) -> None:
        host, port = split_address(self.address)
        backoff = _BACKOFF_MIN
        while True:
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT):
                    _, writer = await asyncio.open_connection(host, port, local_addr=self.transport.source)
                writer.write(bytes((RPC_RAFT,)))
            except (TimeoutError, OSError):
                self.transport.stats["connect_failures"] += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_MIN
            self.writer = writer
            try:
                await self._pump(writer)
            except (TimeoutError, OSError, RuntimeError):
                # uvloop raises RuntimeError for a write on a transport that the peer already closed
                self.transport.stats["send_failures"] += 1
            finally:
                self.writer = None
                writer.close()
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(_CONNECT_TIMEOUT):
                        await writer.wait_closed()

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        while True:
            frames = [await self.queue.get()]
            while not self.queue.empty():
                frames.append(self.queue.get_nowait())
            writer.write(b"".join(frames))
            async with asyncio.timeout(_WRITE_TIMEOUT):
                await writer.drain()
            if writer.transport.is_closing():
                raise ConnectionResetError("raft: connection closed")


class RaftTransport:
    """Sends `Message`s to peers by id; `handle_stream` receives them; `stats` counts drops and failures."""

    def __init__(
        self,
        peers: dict[int, str],
        on_message: Callable[[Message], None],
        max_frame: int = MAX_FRAME,
        queue_size: int = QUEUE_SIZE,
        source_ip: str = "",
    ) -> None:
        self.peers = dict(peers)
        self.source = (source_ip, 0) if source_ip else None
        self.on_message = on_message
        self.max_frame = max_frame
        self.queue_size = queue_size
        self.stats: Counter[str] = Counter()
        self._out: dict[int, _Peer] = {}
        self._inbound: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def set_peer(self, peer: int, address: str) -> None:
        """Learn or change a peer's address; an open connection to an old address is dropped."""
        if self.peers.get(peer) == address:
            return
        self.peers[peer] = address
        old = self._out.pop(peer, None)
        if old is not None:
            old.task.cancel()

    def send(self, message: Message) -> None:
        """Queue `message` for its peer; never blocks. Dropped (and counted) when unknown, oversize or queue full."""
        address = self.peers.get(message.to)
        if address is None:
            self.stats["dropped_unknown_peer"] += 1
            return
        payload = encode(message)
        if len(payload) > self.max_frame:
            self.stats["dropped_oversize_out"] += 1
            return
        peer = self._out.get(message.to)
        if peer is None:
            peer = self._out[message.to] = _Peer(self, address)
        try:
            peer.send(frame(payload))
        except asyncio.QueueFull:
            self.stats["dropped_queue_full"] += 1

    async def close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        outbound = [peer.task for peer in self._out.values()]
        for task in outbound:
            task.cancel()
        await asyncio.gather(*outbound, return_exceptions=True)
        if self._inbound:
            done, pending = await asyncio.wait(list(self._inbound), timeout=_CONNECT_TIMEOUT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*done, *pending, return_exceptions=True)
        self._out.clear()

    async def handle_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inbound.add(task)
        self._writers.add(writer)
        try:
            await self._read_frames(reader)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._inbound.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        while True:
            payload = await read_frame(reader, self.max_frame)
            if payload is None:
                self.stats["oversize_frames"] += 1
                return
            try:
                message = decode(payload)
            except CodecError:
                self.stats["bad_frames"] += 1
                return
            if not isinstance(message, Message):
                self.stats["bad_frames"] += 1
                return
            try:
                self.on_message(message)
            except Exception:
                log.exception("raft: dropping connection after a message could not be handled")
                self.stats["bad_messages"] += 1
                return
