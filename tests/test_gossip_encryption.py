"""Gossip encryption between real agents, seen on the wire: agents started with the same `-encrypt` key
join, one without a key or with another key cannot, and a raw capture of loopback traffic on the serf port
holds no member name from the encrypted agents while it does from a plain-text pair gossiping beside them.

Needs root for the AF_PACKET capture (skips otherwise). Imports: stdlib, pytest, requests, consulpy.gossip,
tests.agentproc.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from consulpy.gossip.keyring import Keyring, decode_key, keygen
from consulpy.gossip.security import ENCRYPTION_VERSION, Envelope
from tests.agentproc import ROOT, AgentProcess, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="capturing loopback traffic needs root (AF_PACKET)")

SERF_LAN_PORT = 8301
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # on lo every packet is seen leaving and arriving; keep the arrivals only
ETH_HEADER = 14
ETH_P_IP = 0x0800
IPPROTO_TCP, IPPROTO_UDP = 6, 17
KEY = keygen()
FAST_RAFT = ("-hcl", "performance { raft_multiplier = 1 }")
GOSSIP_SECONDS = 4.0  # several probe rounds (one a second) after the join's push-pull


@dataclass(slots=True, frozen=True)
class Segment:
    """One captured UDP datagram or TCP segment to or from a serf port, with a non-empty payload."""

    proto: str
    source: str
    destination: str
    payload: bytes


class LoopbackCapture:
    """Captures IPv4 traffic on `lo` whose source is one of `sources` and one end the serf LAN port."""

    def __init__(self, sources: set[str]) -> None:
        self.sources = {socket.inet_aton(address): address for address in sources}
        self.segments: list[Segment] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopbackCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65600)
            except TimeoutError:
                continue
            if address[2] != PACKET_OUTGOING:
                self._parse(frame)

    def _parse(self, frame: bytes) -> None:
        if len(frame) < ETH_HEADER + 20 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
            return
        ip = frame[ETH_HEADER:]
        source = self.sources.get(ip[12:16])
        if source is None:
            return
        header, proto = (ip[0] & 0x0F) * 4, ip[9]
        total = struct.unpack_from("!H", ip, 2)[0]
        transport = ip[header:total]
        if proto == IPPROTO_UDP and len(transport) >= 8:
            kind, payload = "udp", transport[8:]
        elif proto == IPPROTO_TCP and len(transport) >= 20:
            kind, payload = "tcp", transport[(transport[12] >> 4) * 4:]
        else:
            return
        ports = struct.unpack_from("!HH", transport, 0)
        if SERF_LAN_PORT in ports and payload:
            self.segments.append(Segment(kind, source, socket.inet_ntoa(ip[16:20]), payload))

    def from_hosts(self, *sources: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.source in sources]


class Agents:
    """Agents of one test on its loopback block, each with its own node name and data directory."""

    def __init__(self, block: str, data_root: Path) -> None:
        self.block = block
        self.data_root = data_root
        self.started: list[AgentProcess] = []

    def address(self, host: int) -> str:
        return f"{self.block}.{host}"

    def launch(self, host: int, node: str, *args: str) -> AgentProcess:
        # These flags follow AgentProcess's own -node; the last one wins, as with Go's flag package.
        agent = AgentProcess(self.address(host), ("-node", node, "-data-dir", str(self.data_root / node), *args))
        self.started.append(agent)
        return agent.launch()

    def cleanup(self) -> None:
        for agent in self.started:
            agent.kill()
            print(f"---- {agent.address} log (tail) ----")
            print("\n".join(agent.log().splitlines()[-25:]))
            agent.cleanup()


def members(agent: AgentProcess) -> dict[str, int]:
    try:
        found = requests.get(f"{agent.http}/v1/agent/members", timeout=2).json()
    except (requests.RequestException, ValueError):
        return {}
    return {member["Name"]: member["Status"] for member in found}


def all_alive(agents: list[AgentProcess], names: set[str]) -> bool:
    return all(members(agent) == dict.fromkeys(names, 1) for agent in agents)


def join(agent: AgentProcess, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consulpy", "join", "-http-addr", f"{agent.address}:8500", target],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.fixture
def agents(loopback: str) -> Iterator[Agents]:
    with tempfile.TemporaryDirectory(prefix="consulpy-enc-") as data_root:
        group = Agents(loopback, Path(data_root))
        try:
            yield group
        finally:
            group.cleanup()


def test_encrypted_gossip_shows_no_member_names_and_refuses_strangers(agents: Agents) -> None:
    enc_names = ("enc-alpha-7f3", "enc-bravo-7f3")
    plain_names = ("plain-alpha-7f3", "plain-bravo-7f3")
    enc_hosts, plain_hosts = (agents.address(2), agents.address(3)), (agents.address(6), agents.address(7))
    with LoopbackCapture({*enc_hosts, *plain_hosts}) as capture:
        enc_seed = agents.launch(2, enc_names[0], "-server", "-bootstrap", "-encrypt", KEY, *FAST_RAFT)
        plain_seed = agents.launch(6, plain_names[0], "-server", "-bootstrap", *FAST_RAFT)
        wait_until(lambda: members(enc_seed) and members(plain_seed), 20)
        enc_client = agents.launch(3, enc_names[1], "-retry-join", enc_hosts[0], "-encrypt", KEY)
        plain_client = agents.launch(7, plain_names[1], "-retry-join", plain_hosts[0])
        wait_until(lambda: all_alive([enc_seed, enc_client], set(enc_names)), 20)
        wait_until(lambda: all_alive([plain_seed, plain_client], set(plain_names)), 20)
        time.sleep(GOSSIP_SECONDS)

    encrypted = capture.from_hosts(*enc_hosts)
    plain = capture.from_hosts(*plain_hosts)
    counts = {kind: sum(segment.proto == kind for segment in encrypted) for kind in ("udp", "tcp")}
    print(f"captured from the encrypted pair: {counts}; from the plain-text pair: {len(plain)} segments")
    # The join's push-pull went over TCP, probes and their acks over UDP.
    assert counts["udp"] >= 2 * GOSSIP_SECONDS and counts["tcp"] >= 1
    for segment in encrypted:
        for name in (*enc_names, *plain_names):
            assert name.encode() not in segment.payload, segment
    envelope = Envelope(Keyring([decode_key(KEY)]))
    for segment in encrypted:
        if segment.proto == "udp":
            assert segment.payload[0] == ENCRYPTION_VERSION
            envelope.open_packet(segment.payload)
    # The control: the same capture does see the plain-text pair's names, in datagrams and in streams.
    for name in plain_names:
        for kind in ("udp", "tcp"):
            assert any(segment.proto == kind and name.encode() in segment.payload for segment in plain), (name, kind)

    stranger = agents.launch(4, "enc-charlie-7f3", "-server", "-bootstrap", *FAST_RAFT)
    wrong_key = agents.launch(5, "enc-delta-7f3", "-server", "-bootstrap", "-encrypt", keygen(), *FAST_RAFT)
    wait_until(lambda: members(stranger) and members(wrong_key), 20)
    refused = join(stranger, enc_hosts[0])
    assert refused.returncode == 1, refused
    assert "remote state is encrypted and encryption is not configured" in refused.stderr
    refused = join(wrong_key, enc_hosts[0])
    assert refused.returncode == 1, refused
    assert "No installed keys could decrypt the message" in refused.stderr
    time.sleep(2)
    for agent in (enc_seed, enc_client):
        assert set(members(agent)) == set(enc_names)
    assert set(members(stranger)) == {"enc-charlie-7f3"} and set(members(wrong_key)) == {"enc-delta-7f3"}
