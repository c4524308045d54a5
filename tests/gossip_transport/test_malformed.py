"""Hostile and broken input on the gossip port: every kind is dropped and counted, never a traceback, and
membership is unchanged afterwards."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import zlib

import pytest

from consulpy.codec import encode
from consulpy.gossip import MemberState
from consulpy.gossip.keyring import Keyring, keygen
from consulpy.gossip.messages import Ack, Alive, Dead, Ping, Suspect
from consulpy.gossip.security import FRAME_MESSAGE, HAS_CRC, HAS_LABEL, Envelope
from consulpy.gossip.transport import MAX_PACKET_SIZE, MAX_STREAM_FRAME, GossipTransport
from tests.gossip_transport.pool import PORT, Pool, run, until, view


def send_datagrams(source: str, target: str, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((source, 0))
        for payload in payloads:
            udp.sendto(payload, (target, PORT))


async def send_stream(source: str, target: str, data: bytes, wait: float = 2.0) -> bytes:
    """Write `data` on a fresh connection and return what comes back before the other side closes."""
    reader, writer = await asyncio.open_connection(target, PORT, local_addr=(source, 0))
    writer.write(data)
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


def crc(data: bytes) -> bytes:
    return bytes((HAS_CRC,)) + zlib.crc32(data).to_bytes(4, "big") + data


def settled(member: GossipTransport, counters: dict[str, int]) -> bool:
    merged = member.stats + member.core.stats
    return all(merged[name] >= count for name, count in counters.items())


def test_malformed_datagrams_are_dropped_and_counted(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        target = await pool.start(2)
        assert await (await pool.start(3)).join([pool.seed()]) == 1
        before = view(target)
        send_datagrams(pool.ip(20), pool.ip(2), [
            b"\xff\x00 not gossip",                      # not msgpack, no CRC: the core rejects it
            crc(b"\x93\x01\x02\x03"),                   # checksum fine, but an array of integers
            bytes((HAS_CRC,)) + b"\x00\x00\x00\x00junk",  # wrong checksum
            bytes((HAS_LABEL, 9)) + b"abc",              # label header cut short
            bytes((HAS_LABEL, 3)) + b"lan" + crc(b"\x90"),  # a label this member does not carry
            b"",
            b"\x00" * (MAX_PACKET_SIZE + 1),              # far larger than any gossip packet
        ])
        expected = {"malformed_packets": 3, "packets_bad_checksum": 1, "packets_bad_label": 2,
                    "packets_oversized": 1}
        await until(lambda: settled(target, expected), 3, f"counted {expected}")
        assert view(target) == before == {"node-2": MemberState.ALIVE, "node-3": MemberState.ALIVE}

    run(loopback, body, timeout=10)


def test_tampered_and_plain_datagrams_are_dropped_by_an_encrypted_member(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        keyring = Keyring.from_base64(keygen())
        target = await pool.start(2, keyring)
        sealed = Envelope(keyring).seal_packet(b"\x90")
        flipped = [sealed[:i] + bytes((sealed[i] ^ 0x01,)) + sealed[i + 1:] for i in range(len(sealed))]
        send_datagrams(pool.ip(20), pool.ip(2), [crc(b"\x90"), b"\x05 future version", *flipped])
        total = 2 + len(flipped)
        await until(lambda: target.stats["packets_undecryptable"] == total, 3, f"{total} undecryptable")
        assert target.core.stats["malformed_packets"] == 0

    run(loopback, body, timeout=10)


def test_malformed_streams_are_dropped_and_counted(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        target = await pool.start(2)
        assert await (await pool.start(3)).join([pool.seed()]) == 1
        before = view(target)
        source, ip = pool.ip(20), pool.ip(2)
        frame = struct.Struct(">BI")
        # A frame the core cannot decode: closed without a reply.
        assert await send_stream(source, ip, frame.pack(FRAME_MESSAGE, 4) + b"junk") == b""
        # An unknown frame kind, an announced length beyond the limit: answered with an error frame.
        reply = await send_stream(source, ip, frame.pack(7, 4) + b"junk")
        assert b"unknown stream frame kind 7" in reply
        reply = await send_stream(source, ip, frame.pack(FRAME_MESSAGE, MAX_STREAM_FRAME + 1))
        assert b"remote node state is larger than limit" in reply
        # Cut short, and silent until the stream deadline.
        assert await send_stream(source, ip, frame.pack(FRAME_MESSAGE, 100) + b"short") == b""
        reader, writer = await asyncio.open_connection(ip, PORT, local_addr=(source, 0))
        assert await asyncio.wait_for(reader.read(), pool.config.tcp_timeout + 2) == b""
        writer.close()
        expected = {"malformed_streams": 1, "streams_malformed": 1, "streams_oversized": 1,
                    "streams_incomplete": 2}
        await until(lambda: settled(target, expected), 3, f"counted {expected}")
        assert view(target) == before
        # Still serving: a new member joins through it.
        assert await (await pool.start(4)).join([pool.seed()]) == 1

    run(loopback, body, timeout=15)


@pytest.mark.parametrize("label", ["", "segment-a"])
def test_members_with_a_label_talk_only_to_the_same_label(loopback: str, label: str) -> None:
    async def body(pool: Pool) -> None:
        await pool.start(2, label="segment-a")
        same = await pool.start(3, label=label)
        if label:
            assert await same.join([pool.seed()]) == 1
            await until(lambda: set(view(same)) == {"node-2", "node-3"}, 5, "labelled members converge")
        else:
            with pytest.raises(Exception, match="EOF"):
                await same.join([pool.seed()])
            assert pool.members["node-2"].stats["streams_bad_label"] == 1

    run(loopback, body, timeout=10)


def test_random_and_mutated_input_never_trips_the_core(loopback: str) -> None:
    """Seeded fuzz over real sockets: random bytes and single-byte mutations of real gossip messages, as
    datagrams and as stream frames. All dropped or handled; no exception reaches the transport."""
    seed = 20261121
    rng = random.Random(seed)
    # Accusations name a member that does not exist: a well-formed one about a real member is news, which
    # plain-text gossip cannot tell from an attack (encryption is what keeps strangers out).
    valid = [encode(Ping(7, "node-2", "1.2.3.4:8301", "x")), encode(Alive(3, "node-9", "1.2.3.4:8301", b"m")),
             encode(Suspect(1, "node-8", "x")), encode(Dead(1, "node-8", "x")), encode(Ack(1, b"p"))]

    def mutated() -> bytes:
        data = bytearray(rng.choice(valid))
        data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)

    def random_bytes() -> bytes:
        return rng.randbytes(rng.randrange(1, 200))

    async def body(pool: Pool) -> None:
        target = await pool.start(2)
        assert await (await pool.start(3)).join([pool.seed()]) == 1
        # In bursts the socket buffer holds, so the kernel does not drop them before the transport reads.
        for _ in range(8):
            send_datagrams(pool.ip(20), pool.ip(2), [crc(mutated()) if i % 2 else random_bytes() for i in range(50)])
            await asyncio.sleep(0.05)
        frame = struct.Struct(">BI")
        for _ in range(20):
            body_bytes = mutated() if rng.random() < 0.5 else random_bytes()
            await send_stream(pool.ip(20), pool.ip(2), frame.pack(FRAME_MESSAGE, len(body_bytes)) + body_bytes)
        await until(lambda: target.stats["packets_received"] >= 400, 5, "every datagram read")
        assert target.stats["packets_failed"] == 0 and target.stats["streams_failed_in_core"] == 0, f"seed {seed}"
        assert {n for n, s in view(target).items() if s == MemberState.ALIVE} >= {"node-2", "node-3"}

    run(loopback, body, timeout=15)
