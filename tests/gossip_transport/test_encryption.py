"""Gossip encryption over real sockets: a shared key converges, a wrong key or none cannot join and its
packets are counted as undecryptable, and what goes on the wire carries no member names."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from consulpy.gossip import MemberState
from consulpy.gossip.keyring import Keyring, decode_key, keygen
from consulpy.gossip.security import ENCRYPTION_VERSION, FRAME_ENCRYPTED, Envelope
from consulpy.gossip.transport import JoinError
from tests.gossip_transport.pool import PORT, Pool, run, until, view

KEY = keygen()
OTHER_KEY = keygen()


def ring(*keys: str) -> Keyring:
    return Keyring([decode_key(k) for k in keys])


async def encrypted_cluster(pool: Pool, hosts: range) -> None:
    await pool.start(hosts[0], ring(KEY))
    for host in hosts[1:]:
        # One member also holds a second key, as during a rotation; its primary is still the shared one.
        keys = (KEY, OTHER_KEY) if host == hosts[-1] else (KEY,)
        assert await (await pool.start(host, ring(*keys))).join([pool.seed(hosts[0])]) == 1
    names = {f"node-{h}" for h in hosts}
    await until(lambda: all(view(m) == dict.fromkeys(names, MemberState.ALIVE) for m in pool.members.values()),
                10, "encrypted members converge")


def test_members_with_the_same_key_converge(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        await encrypted_cluster(pool, range(2, 6))
        for member in pool.members.values():
            assert member.stats["packets_undecryptable"] == 0
            assert member.stats["streams_undecryptable"] == 0
            assert member.core.stats["malformed_packets"] == 0

    run(loopback, body)


def test_a_member_with_another_key_or_none_cannot_join(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        await encrypted_cluster(pool, range(2, 4))
        seed = pool.members["node-2"]
        stranger = await pool.start(8, ring(OTHER_KEY))
        with pytest.raises(JoinError) as raised:
            await stranger.join([pool.seed()])
        assert str(raised.value) == (
            f"1 error occurred:\n\t* Failed to join {pool.seed()}: No installed keys could decrypt the message\n\n")
        assert seed.stats["streams_undecryptable"] == 1
        plain = await pool.start(9)
        with pytest.raises(JoinError) as raised:
            await plain.join([pool.seed()])
        assert "remote state is encrypted and encryption is not configured" in str(raised.value)
        assert seed.stats["streams_undecryptable"] == 2
        # Their datagrams are dropped before the core sees them, and counted.
        stranger.apply(lambda now: stranger.core.send_user(pool.seed(), b"hello from outside"))
        plain.apply(lambda now: plain.core.send_user(pool.seed(), b"hello in plain text"))
        await until(lambda: seed.stats["packets_undecryptable"] == 2, 3, "both datagrams counted undecryptable")
        assert seed.core.stats["malformed_packets"] == 0
        for member in (seed, pool.members["node-3"]):
            assert set(view(member)) == {"node-2", "node-3"}
        assert set(view(stranger)) == {"node-8"} and set(view(plain)) == {"node-9"}

    run(loopback, body)


def test_captured_gossip_shows_no_member_names(loopback: str) -> None:
    """Members go on probing a member that stopped: a fake member in its place records the datagrams and
    the TCP fallback probe they send it. None holds a member name; each opens with the key."""

    async def body(pool: Pool) -> None:
        await encrypted_cluster(pool, range(2, 6))
        await pool.stop("node-5")
        datagrams: list[bytes] = []
        streams: list[bytes] = []
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((pool.ip(5), PORT))
        udp.setblocking(False)
        loop = asyncio.get_running_loop()

        async def record_datagrams() -> None:
            while True:
                datagrams.append(await loop.sock_recv(udp, 65536))

        async def record_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(TimeoutError, OSError):
                streams.append(await asyncio.wait_for(reader.read(65536), 2))
            writer.close()

        server = await asyncio.start_server(record_stream, pool.ip(5), PORT, reuse_address=True)
        recorder = asyncio.create_task(record_datagrams())
        try:
            await until(lambda: len(datagrams) >= 3 and len(streams) >= 1, 8,
                        "the others probe the fake member over UDP and TCP")
        finally:
            recorder.cancel()
            server.close()
            udp.close()
        envelope = Envelope(ring(KEY))
        for datagram in datagrams:
            assert b"node-" not in datagram
            assert datagram[0] == ENCRYPTION_VERSION
            assert b"node-5" in envelope.open_packet(datagram)  # a probe of node-5, once decrypted
        for stream in streams:
            assert b"node-" not in stream
            assert stream[0] == FRAME_ENCRYPTED
        print(f"captured {len(datagrams)} datagrams and {len(streams)} streams, no plain text names")

    run(loopback, body)

