"""`RaftServer`: the `Consensus` implementation that replicates commands with Raft over TCP.

It drives a `RaftNode` with ticks and peer messages; each Ready is made durable in the WAL (one fsync, in a
worker thread), then its messages are sent, then committed commands are applied to the FSM in log order and
waiting proposals and reads are answered. A new cluster is bootstrapped by writing the same add-voter entries
on every founding server; the applied state is compacted into FSM snapshots that lagging followers install.
Imports: stdlib, consulpy.codec, consulpy.fsm, consulpy.server (consensus, rpc), consulpy.raft.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from consulpy.codec import encode
from consulpy.fsm import FSM, Command, decode_command, encode_command
from consulpy.raft.core import Config, RaftNode, Ready, Role, early_messages, must_sync
from consulpy.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    Snapshot,
)
from consulpy.raft.storage import FatalStorageError, RaftStorage
from consulpy.raft.transport import RaftTransport, split_address
from consulpy.server.consensus import NoLeaderError, OperatorError, RaftPeer
from consulpy.server.rpc import RPC_RAFT, RetryableError, ServerPort

# One tick is 100 ms x raft_multiplier; an election timeout is 8 to 16 ticks (Consul: 1 s x multiplier, and
# hashicorp/raft randomises it over [T, 2T)); the leader sends heartbeats every tick.
BASE_TICK = 0.1
ELECTION_TICKS = 8
HEARTBEAT_TICKS = 1
DEFAULT_SNAPSHOT_THRESHOLD = 16384

log = logging.getLogger("consulpy.agent.server.raft")


class NotLeaderError(RetryableError):
    """This server is not the leader; `leader_address` (`ip:port`) is where the request can be forwarded."""

    def __init__(self, leader_address: str) -> None:
        super().__init__(f"not the leader; the leader is {leader_address}")
        self.leader_address = leader_address


class LeadershipLostError(Exception):
    """A proposal was overwritten by another leader's entry before it committed (Consul's wording)."""

    def __str__(self) -> str:
        return "leadership lost while committing log"


def bootstrap_entries(voters: list[int]) -> list[Entry]:
    """The founding log: one add-voter entry per server, identical on every founding server."""
    return [Entry(1, index, EntryType.CONF_CHANGE, encode(ConfChange(ConfChangeType.ADD_VOTER, voter)))
            for index, voter in enumerate(sorted(voters), start=1)]


class RaftServer:
    """One Raft server: node, durable storage, transport and FSM, run by a tick task and a ready loop.

    `addresses` maps server ids to `ip:port` (more are learned with `set_address`). A server whose data
    directory is empty has no configuration: it waits for `bootstrap` or for a leader to add it. Raft
    traffic arrives through `port` (the agent's server port); without one the server listens on its own.
    Call `start()` once, `stop()` at the end.
    """

    def __init__(
        self,
        node_id: int,
        address: str,
        addresses: dict[int, str],
        data_dir: str,
        fsm: FSM,
        rng: random.Random,
        raft_multiplier: int = 1,
        snapshot_threshold: int = DEFAULT_SNAPSHOT_THRESHOLD,
        port: ServerPort | None = None,
        source_ip: str = "",
    ) -> None:
        self.id = node_id
        self.address = address
        self.addresses = {**addresses, node_id: address}
        self.data_dir = data_dir
        self.fsm = fsm
        self.rng = rng
        self.tick_interval = BASE_TICK * raft_multiplier
        self.snapshot_threshold = snapshot_threshold
        self.on_leadership: Callable[[bool], None] | None = None
        self.storage: RaftStorage | None = None
        self.node: RaftNode | None = None
        self.transport = RaftTransport(self.addresses, self._on_message, source_ip=source_ip)
        self._port = port
        self._own_port = port is None
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
        self._leading = False
        self._lead_index = 0
        self._observed: tuple[Role, int] = (Role.FOLLOWER, 0)
        self.names: dict[int, tuple[str, str]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        storage = self.storage = await loop.run_in_executor(self._executor, RaftStorage, self.data_dir)
        try:
            node = await loop.run_in_executor(self._executor, self._load_node, storage)
            if self._port is None:
                self._port = ServerPort(split_address(self.address))
                self._port.handle(RPC_RAFT, self.transport.handle_stream)
                await self._port.start()
            else:
                self._port.handle(RPC_RAFT, self.transport.handle_stream)
        except BaseException:
            await loop.run_in_executor(self._executor, storage.close)
            self.storage = None
            raise
        self._run(node)

    def has_state(self) -> bool:
        """True once this server holds any Raft log or snapshot (it is, or was, part of a cluster)."""
        return self.node is not None and self.node.log.last_index() > 0

    async def bootstrap(self, voters: dict[int, str]) -> None:
        """Found a new cluster of `voters` (which must include this server); a no-op if there is state already."""
        if self.has_state():
            return
        for voter, address in voters.items():
            self.set_address(voter, address)
        await self._halt()
        entries = bootstrap_entries(list(voters))
        storage = self.storage
        assert storage is not None
        loop = asyncio.get_running_loop()
        # A vote this server already cast (before it had a log) must survive: keep its term and vote.
        held = storage.wal.hard_state
        founding = HardState(term=max(1, held.term), vote=held.vote, commit=len(entries))
        await loop.run_in_executor(self._executor, storage.wal.append, entries, founding)
        self._run(await loop.run_in_executor(self._executor, self._load_node, storage))
        log.info("bootstrapped a cluster of %d servers", len(voters))

    def set_address(self, node_id: int, address: str, name: str = "", uuid: str = "") -> None:
        """Learn where server `node_id` is, and the node name and ID the operator API shows for it."""
        self.addresses[node_id] = address
        self.transport.set_peer(node_id, address)
        if name:
            self.names[node_id] = (name, uuid)

    def _run(self, node: RaftNode) -> None:
        snapshot = node.log.snapshot
        if snapshot.data:
            self.fsm.restore(snapshot.data)
        self.node = node
        self._applied = node.log.applied
        self._last_contact = time.monotonic()
        self._tasks = [asyncio.create_task(self._tick_loop(node)), asyncio.create_task(self._ready_loop(node))]

    async def _halt(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def stop(self) -> None:
        await self._halt()
        self._set_leading(False)
        if self._own_port and self._port is not None:
            await self._port.close()
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
        """Leader, and its own-term entry is applied here: its state reflects everything committed before."""
        return self._leading

    def lease_valid(self) -> bool:
        return self._leading and self.node is not None and self.node.lease_valid()

    def leader_address(self) -> str:
        if self.node is None:
            return ""
        return self.addresses.get(self.node.lead, "")

    def peers(self) -> list[str]:
        if self.node is None:
            return []
        return [self.addresses[v] for v in self.node.conf.voters if v in self.addresses]

    def conf(self) -> ConfState:
        return self.node.conf if self.node is not None else ConfState(())

    def configuration(self) -> tuple[int, list[RaftPeer]]:
        node = self.node
        if node is None:
            return 0, []
        conf_index = node.log.conf_indexes[-1] if node.log.conf_indexes else node.log.snapshot.index
        peers = []
        for member in (*node.conf.voters, *node.conf.learners):
            name, uuid = self.names.get(member, ("", ""))
            last_index = node.log.last_index() if member == self.id else self.match_index(member)
            peers.append(RaftPeer(name, uuid, self.addresses.get(member, ""), leader=member == node.lead,
                                  voter=member in node.conf.voters, last_index=last_index))
        return conf_index, peers

    def _member_by(self, peer_id: str, address: str) -> int:
        for member in (*self.conf().voters, *self.conf().learners):
            if (peer_id and self.names.get(member, ("", ""))[1] == peer_id) or (
                    address and self.addresses.get(member) == address):
                return member
        if peer_id:
            raise OperatorError(f'id "{peer_id}" was not found in the Raft configuration')
        raise OperatorError(f'address "{address}" was not found in the Raft configuration')

    async def remove_peer(self, *, peer_id: str = "", address: str = "") -> None:
        await self.change_membership(ConfChange(ConfChangeType.REMOVE, self._member_by(peer_id, address)))

    async def transfer_leader(self, peer_id: str = "") -> str:
        node = self._running()
        if node.role != Role.LEADER:
            raise self._not_leader()
        if peer_id:
            target = self._member_by(peer_id, "")
        else:
            others = [v for v in node.conf.voters if v != self.id]
            if not others:
                raise OperatorError("cannot find peer to transfer leadership to")
            target = max(others, key=self.match_index)
        if not await self.transfer_leadership(target):
            raise OperatorError("leadership transfer timed out")
        return self.names.get(target, ("", ""))[1]

    def match_index(self, node_id: int) -> int:
        """How far `node_id`'s log is known to match the leader's (leader only; 0 when unknown)."""
        node = self.node
        if node is None or node.role != Role.LEADER:
            return 0
        progress = node.prs.get(node_id)
        return progress.match if progress is not None else 0

    def last_index(self) -> int:
        return self.node.log.last_index() if self.node is not None else 0

    async def change_membership(self, change: ConfChange) -> None:
        """Propose a single-server change and wait until it is applied; RetryableError when not leader now."""
        node = self._running()
        if node.role != Role.LEADER:
            raise self._not_leader()
        index = node.propose_conf_change(change)
        if index == 0:
            raise RetryableError("a configuration change is already in progress")
        self._wake.set()
        await self.wait_applied(index)

    async def transfer_leadership(self, to: int) -> bool:
        """Ask the leader to hand over to `to`; True once `to` leads (within two election timeouts)."""
        node = self._running()
        if not node.transfer_leadership(to):
            return False
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * 2 * ELECTION_TICKS * self.tick_interval
        while loop.time() < deadline:
            if self.node is not None and self.node.lead == to:
                return True
            await asyncio.sleep(self.tick_interval / 2)
        return False

    async def wait_applied(self, index: int) -> None:
        if self._applied >= index:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, waiter))
        await waiter

    def last_contact_ms(self) -> int:
        if self.is_leader():
            return 0
        return int((time.monotonic() - self._last_contact) * 1000)

    def term(self) -> int:
        return self.node.term if self.node is not None else 0

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
        try:
            async with asyncio.timeout(patience):
                await self.wait_applied(index)
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

    def _load_node(self, storage: RaftStorage) -> RaftNode:
        """A node from the newest snapshot and the WAL (an empty directory gives a node with no configuration)."""
        snapshot = storage.snapshots.latest() or Snapshot(0, 0, ConfState(()))
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
        if message.type == MsgType.SNAPSHOT and message.snapshot is None:
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
        """Persist, send, apply. Any unexpected failure here stops the process: a server that can no longer
        apply its log must not keep answering as if it could."""
        try:
            await self._process_readies(node)
        except Exception as exc:
            log.exception("fatal error in the Raft loop; exiting")
            raise FatalStorageError(f"Raft loop failed: {exc}") from exc

    async def _process_readies(self, node: RaftNode) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while node.has_ready():
                rd = node.ready()
                storage = self.storage
                assert storage is not None
                early, late = early_messages(rd, storage.wal.hard_state)
                for message in early:
                    self.transport.send(message)
                if must_sync(rd, storage.wal.hard_state):
                    await loop.run_in_executor(self._executor, self._persist, rd)
                for message in late:
                    self.transport.send(message)
                self._apply(rd)
                node.advance(rd)
                self._track_leadership(node, rd)
            if node.log.applied - node.log.snapshot.index >= self.snapshot_threshold:
                await self._compact(node)

    def _track_leadership(self, node: RaftNode, rd: Ready) -> None:
        """Leadership counts from when this leader's first entry of its term is applied here."""
        if (rd.role, rd.leader) != self._observed:
            self._observed = (rd.role, rd.leader)
            log.debug("state: role=%s term=%d leader=%s", rd.role.value, node.term,
                      self.addresses.get(rd.leader, rd.leader or "none"))
        if rd.role != Role.LEADER:
            self._lead_index = 0
            self._set_leading(False)
            return
        if not self._lead_index:
            self._lead_index = node.log.last_index()
        self._set_leading(self._applied >= self._lead_index)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        log.info("%s", "this server is now the leader" if leading else "this server is no longer the leader")
        if self.on_leadership is not None:
            self.on_leadership(leading)

    async def _compact(self, node: RaftNode) -> None:
        """Snapshot the FSM at the applied index, persist it, then drop the log it covers."""
        index = node.log.applied
        node.compact(index, self.fsm.snapshot())
        snapshot = node.log.snapshot
        await asyncio.get_running_loop().run_in_executor(self._executor, self._save_compaction, snapshot)
        log.info("snapshot taken at index %d; log compacted", index)

    def _save_compaction(self, snap: Snapshot) -> None:
        storage = self.storage
        assert storage is not None
        try:
            storage.snapshots.save(snap.index, snap.term, snap.conf, snap.data)
        except OSError as err:
            raise FatalStorageError(f"Raft snapshot {snap.index} could not be saved: {err}") from err
        if storage.wal.first_index <= snap.index + 1 <= storage.wal.last_index + 1:
            storage.wal.truncate_prefix(snap.index + 1)

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
        if rd.snapshot is not None and rd.snapshot.data:
            self.fsm.restore(rd.snapshot.data)
            self._applied = rd.snapshot.index
            log.info("installed snapshot from the leader: index=%d term=%d", rd.snapshot.index, rd.snapshot.term)
            for index in [i for i in self._proposals if i <= self._applied]:
                _, future = self._proposals.pop(index)
                if not future.done():
                    future.set_exception(LeadershipLostError())
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
            read = self._reads.get(rs.context)
            if read is not None and not read.done():
                read.set_result(rs.index)
        if self._applied_waiters:
            waiting = []
            for index, waiter in self._applied_waiters:
                if index <= self._applied:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    waiting.append((index, waiter))
            self._applied_waiters = waiting
