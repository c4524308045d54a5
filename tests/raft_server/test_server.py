"""Three `RaftServer`s in one process on 127.A.B.2/.3/.4:8300, each with its own data directory: election,
replicated KV writes, leader failover, restart and catch-up from disk, ReadIndex, and non-leader refusal.
Imports: stdlib, pytest, consulpy, tests.agentproc.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from consulpy.fsm import FSM, KVSRequest
from consulpy.raft.messages import Message, MsgType
from consulpy.raft.server import NotLeaderError, RaftServer
from consulpy.raft.transport import RaftTransport
from consulpy.server.consensus import NoLeaderError
from consulpy.server.rpc import RPC_RAFT, ServerPort
from consulpy.state import KVOp, StateStore
from tests.agentproc import LoopbackBlocks, port_free

PORT = 8300
T = TypeVar("T")
_blocks = LoopbackBlocks()


def raft_block() -> str:
    while True:
        prefix = _blocks.next_block()
        if all(port_free(f"{prefix}.{host}", PORT) for host in (2, 3, 4)):
            return prefix


class Cluster:
    def __init__(self, tmp: Path, seed: int) -> None:
        prefix = raft_block()
        self.voters = {i: f"{prefix}.{i + 1}:{PORT}" for i in (1, 2, 3)}
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.servers: dict[int, RaftServer] = {}

    async def start(self, node_id: int) -> RaftServer:
        server = RaftServer(node_id, self.voters[node_id], self.voters, str(self.tmp / f"n{node_id}"),
                            FSM(StateStore()), random.Random(self.rng.random()), raft_multiplier=1)
        await server.start()
        await server.bootstrap(self.voters)
        self.servers[node_id] = server
        return server

    async def stop(self, node_id: int) -> None:
        await self.servers.pop(node_id).stop()

    async def close(self) -> None:
        for node_id in list(self.servers):
            await self.stop(node_id)

    async def leader(self, timeout: float = 8.0) -> RaftServer:
        async def find() -> RaftServer:
            while True:
                leaders = [s for s in self.servers.values() if s.is_leader()]
                if len(leaders) == 1:
                    return leaders[0]
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(find(), timeout)


async def until(check: Callable[[], bool], timeout: float) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


def run(tmp: Path, body: Callable[[Cluster], Awaitable[T]], timeout: float = 40.0, seed: int = 1) -> T:
    async def main() -> T:
        cluster = Cluster(tmp, seed)
        try:
            return await asyncio.wait_for(body(cluster), timeout)
        finally:
            await cluster.close()

    return asyncio.run(main())


def put(key: str, value: bytes) -> KVSRequest:
    return KVSRequest(KVOp("set", key, value))


def has_all(server: RaftServer, written: dict[str, bytes]) -> bool:
    store = server.fsm.store
    for key, value in written.items():
        entry = store.kv_get(key)[1]
        if entry is None or entry.value != value:
            return False
    return True


def test_replication_failover_restart_and_reads(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        for node_id in (1, 2, 3):
            await cluster.start(node_id)
        leader = await cluster.leader()
        written: dict[str, bytes] = {}
        for i in range(50):
            key, value = f"k/{i:02d}", f"v{i}".encode()
            assert await leader.apply(put(key, value)) is True
            written[key] = value
        await until(lambda: all(has_all(s, written) for s in cluster.servers.values()), 5)

        follower = next(s for s in cluster.servers.values() if s is not leader)
        await until(lambda: follower.leader_address() == leader.address, 3)
        with pytest.raises(NotLeaderError) as refused:
            await follower.apply(put("nope", b"x"))
        assert refused.value.leader_address == leader.address
        assert sorted(leader.peers()) == sorted(cluster.voters.values())
        assert leader.last_contact_ms() == 0
        assert follower.last_contact_ms() < 1000

        await leader.read_barrier()
        await follower.read_barrier()
        assert has_all(follower, written)

        old_id = leader.id
        await cluster.stop(old_id)
        new_leader = await cluster.leader(timeout=6)
        assert new_leader.id != old_id
        for i in range(50, 60):
            key, value = f"k/{i:02d}", f"v{i}".encode()
            assert await new_leader.apply(put(key, value)) is True
            written[key] = value

        restarted = await cluster.start(old_id)
        await until(lambda: has_all(restarted, written), 8)
        assert not restarted.is_leader()
        await until(lambda: restarted.leader_address() == new_leader.address, 5)
        await new_leader.read_barrier()

    run(tmp_path, body)


def test_full_restart_keeps_acknowledged_writes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        for node_id in (1, 2, 3):
            await cluster.start(node_id)
        leader = await cluster.leader()
        written = {f"a/{i}": f"{i}".encode() for i in range(10)}
        results = await asyncio.gather(*(leader.apply(put(k, v)) for k, v in written.items()))
        assert results == [True] * len(written)
        await cluster.close()
        for node_id in (1, 2, 3):
            await cluster.start(node_id)
        await cluster.leader()
        await until(lambda: all(has_all(s, written) for s in cluster.servers.values()), 8)

    run(tmp_path, body, seed=7)


def test_without_a_quorum_there_is_no_leader(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        alone = await cluster.start(1)
        await asyncio.sleep(0.3)
        assert not alone.is_leader()
        assert alone.leader_address() == ""
        assert sorted(alone.peers()) == sorted(cluster.voters.values())
        with pytest.raises(NoLeaderError):
            await alone.apply(put("k", b"v"))
        with pytest.raises(NoLeaderError):
            await alone.read_barrier()

    run(tmp_path, body, timeout=10)


def test_transport_drops_bad_and_oversize_frames() -> None:
    async def main() -> None:
        host = f"{raft_block()}.2"
        got: list[Message] = []
        transport = RaftTransport({}, got.append, max_frame=1024)
        port = ServerPort((host, PORT))
        port.handle(RPC_RAFT, transport.handle_stream)
        sender = RaftTransport({1: f"{host}:{PORT}"}, lambda m: None)
        await port.start()
        try:
            for frame in (struct.pack(">I", 5000) + b"x" * 10, struct.pack(">I", 3) + b"\xc1\xc1\xc1",
                          struct.pack(">I", 1) + b"\x01"):
                reader, writer = await asyncio.open_connection(host, PORT)
                writer.write(bytes((RPC_RAFT,)) + frame)
                await writer.drain()
                assert await asyncio.wait_for(reader.read(), 2) == b""
                writer.close()
            assert transport.stats["oversize_frames"] == 1
            assert transport.stats["bad_frames"] == 2
            sender.send(Message(MsgType.HEARTBEAT, 1, 2, 5))
            sender.send(Message(MsgType.APPEND, 7, 2, 5))
            await until(lambda: len(got) == 1, 3)
            assert got[0] == Message(MsgType.HEARTBEAT, 1, 2, 5)
            assert sender.stats["dropped_unknown_peer"] == 1
        finally:
            await sender.close()
            await transport.close()
            await port.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_transport_drops_when_the_peer_queue_is_full() -> None:
    async def main() -> None:
        prefix = raft_block()
        sender = RaftTransport({1: f"{prefix}.2:{PORT}"}, lambda m: None, queue_size=2)
        try:
            for term in range(5):
                sender.send(Message(MsgType.HEARTBEAT, 1, 2, term))
            assert sender.stats["dropped_queue_full"] == 3
            await until(lambda: sender.stats["connect_failures"] >= 1, 3)
        finally:
            await sender.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_socket_is_released_after_stop(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        server = await cluster.start(1)
        host, port = server.address.split(":")
        await cluster.stop(1)
        probe = socket.socket()
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
        finally:
            probe.close()

    run(tmp_path, body, timeout=10)
