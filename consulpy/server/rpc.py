"""The server port (8300): one TCP listener whose connections say in their first byte what they carry.

`RPC_CONSUL` connections carry multiplexed request/response RPC (forwarded endpoint calls, server discovery);
`RPC_RAFT` connections carry Raft messages, handed to the Raft transport. Frames are length-prefixed msgpack
(`consulpy.codec`) with a size limit. `RPCClient` keeps one connection per server and multiplexes calls on it.
Imports: stdlib, consulpy.codec, consulpy.server.consensus, consulpy.state (errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from consulpy.codec import CodecError, decode, encode
from consulpy.server.consensus import NoLeaderError, OperatorError
from consulpy.state import StateError

RPC_CONSUL = 0x00
RPC_RAFT = 0x01
MAX_FRAME = 64 * 1024 * 1024
CONNECT_TIMEOUT = 1.0
_LENGTH = struct.Struct(">I")

log = logging.getLogger(__name__)

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RPCHandler = Callable[..., Awaitable[Any]]


class RPCError(Exception):
    """A remote handler failed with an error that has no local type; `str()` is the remote message."""


class NotSentError(Exception):
    """The request never reached the remote server (connect failure), so retrying it is always safe."""


class RetryableError(Exception):
    """The remote server refused the request before acting on it (it is no longer the leader)."""


_ERROR_KINDS: dict[str, Callable[[str], Exception]] = {
    "state": StateError,
    "noleader": lambda _: NoLeaderError(),
    "operator": OperatorError,
    "retry": RetryableError,
}


# Everything `RPCClient.call` raises, for callers that treat any failure alike.
CALL_ERRORS = (OSError, TimeoutError, NotSentError, RetryableError, RPCError, NoLeaderError, StateError,
               OperatorError, CodecError, ValueError)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, NoLeaderError):
        return "noleader"
    if isinstance(exc, StateError):
        return "state"
    if isinstance(exc, OperatorError):
        return "operator"
    if isinstance(exc, RetryableError):
        return "retry"
    return "error"


def remote_error(kind: str, message: str) -> Exception:
    return _ERROR_KINDS.get(kind, RPCError)(message)


async def read_frame(reader: asyncio.StreamReader, max_frame: int = MAX_FRAME) -> bytes | None:
    """The next frame's payload; None when the peer sent an oversize length (the caller drops the connection)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > max_frame:
        return None
    return await reader.readexactly(length)


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class ServerPort:
    """The listener on the server port, dispatching each connection on its first byte."""

    def __init__(self, bind: tuple[str, int]) -> None:
        self.bind = bind
        self.handlers: dict[int, StreamHandler] = {}
        self.rpc_methods: dict[str, RPCHandler] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def handle(self, kind: int, handler: StreamHandler) -> None:
        self.handlers[kind] = handler

    def register(self, method: str, handler: RPCHandler) -> None:
        self.rpc_methods[method] = handler

    async def start(self) -> None:
        self.handlers.setdefault(RPC_CONSUL, self._serve_rpc)
        host, port = self.bind
        self._server = await asyncio.start_server(self._accept, host, port, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT * 5):
                kind = (await reader.readexactly(1))[0]
            handler = self.handlers.get(kind)
            if handler is not None:
                await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_rpc(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        calls: set[asyncio.Task[None]] = set()
        try:
            while True:
                payload = await read_frame(reader)
                if payload is None:
                    return
                try:
                    seq, method, args = decode(payload)
                except (CodecError, ValueError, TypeError):
                    return
                task = asyncio.create_task(self._call(writer, seq, method, args))
                calls.add(task)
                task.add_done_callback(calls.discard)
        finally:
            for task in calls:
                task.cancel()

    async def _call(self, writer: asyncio.StreamWriter, seq: int, method: str, args: tuple[Any, ...]) -> None:
        handler = self.rpc_methods.get(method)
        try:
            if handler is None:
                raise RPCError(f"rpc: can't find method {method}")
            reply = encode([seq, "", "", await handler(*args)])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = error_kind(exc)
            if kind == "error" and not isinstance(exc, RPCError):
                log.exception("rpc: %s failed", method)
            reply = encode([seq, kind, str(exc), None])
        with contextlib.suppress(OSError, RuntimeError):
            writer.write(frame(reply))
            await writer.drain()


class _Connection:
    """One outbound RPC connection, shared by concurrent calls matched by sequence number."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.seq = itertools.count(1)
        self.reader_task = asyncio.create_task(self._read(reader))

    @property
    def open(self) -> bool:
        return not self.reader_task.done()

    async def call(self, method: str, args: tuple[Any, ...], timeout: float) -> Any:
        seq = next(self.seq)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[seq] = future
        try:
            try:
                self.writer.write(frame(encode([seq, method, args])))
            except RuntimeError as exc:
                # uvloop: the transport closed under us; the request never left
                raise NotSentError(f"rpc: connection closed: {exc}") from None
            async with asyncio.timeout(timeout):
                await self.writer.drain()
                return await future
        finally:
            self.pending.pop(seq, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        failure: Exception = ConnectionResetError("rpc: connection closed")
        try:
            while True:
                payload = await read_frame(reader)
                if payload is None:
                    return
                seq, kind, message, result = decode(payload)
                future = self.pending.get(seq)
                if future is None or future.done():
                    continue
                if kind:
                    future.set_exception(remote_error(kind, message))
                else:
                    future.set_result(result)
        except (OSError, asyncio.IncompleteReadError, CodecError, ValueError) as exc:
            failure = ConnectionResetError(f"rpc: connection lost: {exc}")
        finally:
            self.writer.close()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(failure)

    async def close(self) -> None:
        self.writer.close()
        self.reader_task.cancel()
        await asyncio.gather(self.reader_task, return_exceptions=True)


class RPCClient:
    """Calls methods on other servers' ports; one multiplexed connection per address, reopened on failure."""

    def __init__(self, source_ip: str = "") -> None:
        """`source_ip`: the local address outbound connections come from (the agent's bind address)."""
        self.source = (source_ip, 0) if source_ip else None
        self._connections: dict[str, _Connection] = {}
        self._connecting: dict[str, asyncio.Lock] = {}

    async def call(self, address: str, method: str, *args: Any, timeout: float = 30.0) -> Any:
        """Call `method` at `address` (`ip:port`). NotSentError when no connection could be made;
        ConnectionResetError/TimeoutError when the outcome is unknown; remote errors re-raised as local types."""
        connection = await self._connect(address)
        return await connection.call(method, args, timeout)

    async def _connect(self, address: str) -> _Connection:
        connection = self._connections.get(address)
        if connection is not None and connection.open:
            return connection
        lock = self._connecting.setdefault(address, asyncio.Lock())
        async with lock:
            connection = self._connections.get(address)
            if connection is not None and connection.open:
                return connection
            host, _, port = address.rpartition(":")
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await asyncio.open_connection(host, int(port), local_addr=self.source)
            except (OSError, TimeoutError, ValueError) as exc:
                raise NotSentError(f"rpc: cannot reach {address}: {exc}") from None
            writer.write(bytes((RPC_CONSUL,)))
            connection = self._connections[address] = _Connection(reader, writer)
            return connection

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
