"""`RaftServer`: the `Consensus` implementation that replicates commands with Raft over TCP.

It drives a `RaftNode` with ticks and peer messages; each Ready is made durable in the WAL (one fsync, in a
worker thread), then its messages are sent, then committed commands are applied to the FSM in log order and
waiting proposals and reads are answered. Imports: stdlib, consulpy.fsm, consulpy.server, consulpy.raft.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from consulpy.fsm import FSM, Command, decode_command, encode_command
from consulpy.raft.core import Config, RaftNode, Ready, Role
from consulpy.raft.messages import ConfState, EntryType, Message, MsgType, Snapshot
from consulpy.raft.storage import FatalStorageError, RaftStorage
from consulpy.raft.transport import RaftTransport, split_address
from consulpy.server.consensus import NoLeaderError

BASE_TICK = 0.1
ELECTION_TICKS = 10
HEARTBEAT_TICKS = 1

log = logging.getLogger(__name__)


class NotLeaderError(Exception):
    """This server is not the leader; `leader_address` (`ip:port`) is where the request can be forwarded."""

    def __init__(self, leader_address: str) -> None:
        super().__init__(f"not the leader; the leader is {leader_address}")
        self.leader_address = leader_address


class LeadershipLostError(Exception):
    """A proposal was overwritten by another leader's entry before it committed (Consul's wording)."""

    def __str__(self) -> str:
        return "leadership lost while committing log"


class RaftServer:
    """One Raft server: node, durable storage, transport and FSM, run by a tick task and a ready loop.

    `voters` maps every server id to its `ip:port`; it bootstraps the configuration when the data directory
    is empty and resolves peer addresses afterwards. Call `start()` once, `stop()` at the end.
    """

    def __init__(
        self,
        node_id: int,
        address: str,
        voters: dict[int, str],
        data_dir: str,
        fsm: FSM,
        rng: random.Random,
        raft_multiplier: int = 1,
    ) -> None:
        self.id = node_id
        self.address = address
        self.addresses = dict(voters)
        self.data_dir = data_dir
        self.fsm = fsm
        self.rng = rng
        self.tick_interval = BASE_TICK * raft_multiplier
        self.storage: RaftStorage | None = None
        self.node: RaftNode | None = None
        self.transport = RaftTransport(split_address(address), self.addresses, self._on_message)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"raft-wal-{node_id}")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._proposals: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._read_seq = itertools.count(1)
        self._read_nonce = rng.getrandbits(64)
        self._applied = 0
        self._last_contact = time.monotonic()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        storage = self.storage = await loop.run_in_executor(self._executor, RaftStorage, self.data_dir)
        try:
            node = await loop.run_in_executor(self._executor, self._restore_node, storage)
            await self.transport.start()
        except BaseException:
            await loop.run_in_executor(self._executor, storage.close)
            self.storage = None
            raise
        self.node = node
        self._applied = node.log.applied
        self._last_contact = time.monotonic()
        self._tasks = [asyncio.create_task(self._tick_loop(node)), asyncio.create_task(self._ready_loop(node))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.transport.close()
        stopped = NoLeaderError()
        for _, future in self._proposals.values():
            if not future.done():
                future.set_exception(stopped)
        for future in self._reads.values():
            if not future.done():
                future.set_exception(stopped)
        for _, waiter in self._applied_waiters:
            if not waiter.done():
                waiter.set_exception(stopped)
        self._proposals.clear()
        self._reads.clear()
        self._applied_waiters.clear()
        if self.storage is not None:
            storage = self.storage
            await asyncio.get_running_loop().run_in_executor(self._executor, storage.close)
            self.storage = None
        self._executor.shutdown(wait=True)

    # ---- Consensus ----

    async def apply(self, command: Command) -> Any:
        node = self._running()
        if node.role != Role.LEADER:
            raise self._not_leader()
        index = node.propose(encode_command(command))
        if index == 0:
            raise self._not_leader()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replaced = self._proposals.get(index)
        if replaced is not None and not replaced[1].done():
            replaced[1].set_exception(LeadershipLostError())
        self._proposals[index] = (node.term, future)
        self._wake.set()
        return await future

    def is_leader(self) -> bool:
        return self.node is not None and self.node.role == Role.LEADER

    def leader_address(self) -> str:
        if self.node is None:
            return ""
        return self.addresses.get(self.node.lead, "")

    def peers(self) -> list[str]:
        if self.node is None:
            return []
        return [self.addresses[v] for v in self.node.conf.voters if v in self.addresses]

    def last_contact_ms(self) -> int:
        if self.is_leader():
            return 0
        return int((time.monotonic() - self._last_contact) * 1000)

    async def read_barrier(self) -> None:
        """ReadIndex round: the leader confirms it still leads, then wait until that index is applied here.

        Each phase is bounded by two election timeouts; running out raises NoLeaderError.
        """
        node = self._running()
        loop = asyncio.get_running_loop()
        patience = 2 * ELECTION_TICKS * self.tick_interval
        deadline = loop.time() + patience
        context = f"{self.id}:{self._read_nonce:x}:{next(self._read_seq)}".encode()
        while not node.read_index(context):
            if node.lead == 0 or loop.time() >= deadline:
                raise NoLeaderError()
            await asyncio.sleep(self.tick_interval)
        future: asyncio.Future[int] = loop.create_future()
        self._reads[context] = future
        self._wake.set()
        try:
            async with asyncio.timeout_at(max(deadline, loop.time() + self.tick_interval)):
                index = await future
        except TimeoutError:
            raise NoLeaderError() from None
        finally:
            self._reads.pop(context, None)
        if self._applied >= index:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._applied_waiters.append((index, waiter))
        try:
            async with asyncio.timeout(patience):
                await waiter
        except TimeoutError:
            raise NoLeaderError() from None

    # ---- internals ----

    def _running(self) -> RaftNode:
        if self.node is None or not self._tasks:
            raise NoLeaderError()
        return self.node

    def _not_leader(self) -> Exception:
        address = self.leader_address()
        return NotLeaderError(address) if address else NoLeaderError()

    def _restore_node(self, storage: RaftStorage) -> RaftNode:
        """A node from the newest snapshot and the WAL; an empty directory is bootstrapped with `voters`."""
        snapshot = storage.snapshots.latest()
        if snapshot is None:
            snapshot = Snapshot(0, 0, ConfState(tuple(sorted(self.addresses))))
            try:
                storage.snapshots.save(snapshot.index, snapshot.term, snapshot.conf, snapshot.data)
            except OSError as err:
                raise FatalStorageError(f"Raft bootstrap snapshot could not be saved: {err}") from err
        wal = storage.wal
        lo = max(wal.first_index, snapshot.index + 1)
        entries = wal.entries(lo, wal.last_index + 1) if lo <= wal.last_index else []
        config = Config(self.id, election_tick=ELECTION_TICKS, heartbeat_tick=HEARTBEAT_TICKS)
        return RaftNode(config, random.Random(self.rng.random()), snapshot=snapshot, entries=entries,
                        hard_state=wal.hard_state)

    def _on_message(self, message: Message) -> None:
        node = self.node
        if node is None or message.to != self.id or not self._tasks:
            return
        if message.type == MsgType.SNAPSHOT and (message.snapshot is None or message.snapshot.data):
            log.warning("raft: ignoring a snapshot with FSM data from %d: installing one is not supported", message.frm)
            return
        node.step(message)
        if message.frm == node.lead and message.type in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
            self._last_contact = time.monotonic()
        self._wake.set()

    async def _tick_loop(self, node: RaftNode) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            node.tick()
            self._wake.set()

    async def _ready_loop(self, node: RaftNode) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while node.has_ready():
                rd = node.ready()
                if rd.snapshot is not None or rd.entries or rd.hard_state is not None:
                    await loop.run_in_executor(self._executor, self._persist, rd)
                for message in rd.messages:
                    self.transport.send(message)
                self._apply(rd)
                node.advance(rd)

    def _persist(self, rd: Ready) -> None:
        """Make a Ready's snapshot, entries and hard state durable (runs in the WAL worker thread)."""
        storage = self.storage
        assert storage is not None
        if rd.snapshot is not None:
            snap = rd.snapshot
            try:
                storage.snapshots.save(snap.index, snap.term, snap.conf, snap.data)
            except OSError as err:
                raise FatalStorageError(f"Raft snapshot {snap.index} could not be saved: {err}") from err
            storage.wal.reset(snap.index + 1)
        if rd.entries or rd.hard_state is not None:
            storage.wal.append(list(rd.entries), rd.hard_state)

    def _apply(self, rd: Ready) -> None:
        for entry in rd.committed_entries:
            result: Any = None
            if entry.type == EntryType.NORMAL and entry.data:
                result = self.fsm.apply(entry.index, decode_command(entry.data))
            self._applied = entry.index
            pending = self._proposals.pop(entry.index, None)
            if pending is not None and not pending[1].done():
                term, future = pending
                if term == entry.term:
                    future.set_result(result)
                else:
                    future.set_exception(LeadershipLostError())
        for rs in rd.read_states:
            future = self._reads.get(rs.context)
            if future is not None and not future.done():
                future.set_result(rs.index)
        if self._applied_waiters:
            waiting = []
            for index, waiter in self._applied_waiters:
                if index <= self._applied:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    waiting.append((index, waiter))
            self._applied_waiters = waiting
