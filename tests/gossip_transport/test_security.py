"""The keyring and the envelope without sockets: key handling in Consul's words, memberlist's framing,
and tampering rejected."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consulpy.gossip.keyring import Keyring, KeyringError, decode_key, encode_key, keygen
from consulpy.gossip.security import (
    ENCRYPT_OVERHEAD,
    FRAME_ENCRYPTED,
    FRAME_HEADER,
    FRAME_MESSAGE,
    NONCE_SIZE,
    Envelope,
    EnvelopeError,
    decrypt,
    encrypt,
)


def test_keygen_makes_consuls_32_byte_base64_key() -> None:
    keys = {keygen() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in keys)


@pytest.mark.parametrize(("text", "error"), [
    ("this is not a valid key", "illegal base64 data at input byte 4"),
    ("abcde", "illegal base64 data at input byte 4"),
    ("a===", "illegal base64 data at input byte 1"),
    ("YWJj", "key size must be 16, 24 or 32 bytes"),
])
def test_invalid_keys_get_gos_error(text: str, error: str) -> None:
    with pytest.raises(KeyringError, match=f"^{error}$"):
        decode_key(text)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_keys_of_each_aes_size_are_accepted(size: int) -> None:
    key = os.urandom(size)
    assert decode_key(encode_key(key)) == key


def test_keyring_install_use_remove(tmp_path: Path) -> None:
    first, second, third = (os.urandom(32) for _ in range(3))
    ring = Keyring([first])
    ring.install(second)
    ring.install(second)
    assert ring.keys() == [first, second] and ring.primary == first
    with pytest.raises(KeyringError, match="Removing the primary key is not allowed"):
        ring.remove(first)
    with pytest.raises(KeyringError, match="Requested key is not in the keyring"):
        ring.use(third)
    ring.use(second)
    assert ring.keys() == [second, first]
    ring.remove(first)
    assert ring.keys() == [second]
    with pytest.raises(KeyringError, match="key size"):
        ring.install(b"short")
    ring.install(third)
    path = tmp_path / "serf" / "local.keyring"
    ring.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Keyring.load(path).keys() == [second, third]
    path.write_text('["not a key"]')
    with pytest.raises(KeyringError):
        Keyring.load(path)


def test_packets_use_memberlists_version_1_framing_and_any_installed_key_opens_them() -> None:
    old, new = os.urandom(16), os.urandom(32)
    sender = Envelope(Keyring([old]))
    sealed = sender.seal_packet(b"\x90")
    assert sealed[0] == 1 and len(sealed) == ENCRYPT_OVERHEAD + 5 + 1 <= 1 + sender.packet_overhead()
    nonce = sealed[1:1 + NONCE_SIZE]
    assert AESGCM(old).decrypt(nonce, sealed[1 + NONCE_SIZE:], None)[5:] == b"\x90"
    # A receiver that has moved to a new primary still opens packets under the old key.
    assert Envelope(Keyring([new, old])).open_packet(sealed) == b"\x90"
    with pytest.raises(EnvelopeError, match="No installed keys could decrypt the message"):
        Envelope(Keyring([new])).open_packet(sealed)


def test_version_0_padded_packets_are_still_accepted() -> None:
    key = os.urandom(16)
    plain = b"\x90"
    pad = 16 - len(plain) % 16
    nonce = os.urandom(NONCE_SIZE)
    sealed = b"\x00" + nonce + AESGCM(key).encrypt(nonce, plain + bytes((pad,)) * pad, None)
    assert decrypt(Keyring([key]), sealed, b"") == plain


def test_every_single_bit_flip_of_a_sealed_packet_is_rejected() -> None:
    keyring = Keyring([os.urandom(32)])
    envelope = Envelope(keyring)
    sealed = envelope.seal_packet(b"\x93" + b"\x01" * 40)
    for bit in range(len(sealed) * 8):
        tampered = bytearray(sealed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(EnvelopeError):
            envelope.open_packet(bytes(tampered))


def test_stream_frames_authenticate_their_header_and_label() -> None:
    keyring = Keyring([os.urandom(32)])
    envelope = Envelope(keyring, label="a")
    frame = envelope.seal_frame(FRAME_MESSAGE, b"state")
    kind, length = FRAME_HEADER.unpack(frame[:FRAME_HEADER.size])
    body = frame[FRAME_HEADER.size:]
    assert kind == FRAME_ENCRYPTED and length == len(body)
    assert envelope.open_frame(kind, length, body) == (FRAME_MESSAGE, b"state")
    with pytest.raises(EnvelopeError) as raised:
        Envelope(keyring, label="b").open_frame(kind, length, body)
    assert raised.value.counter == "streams_undecryptable"
    with pytest.raises(EnvelopeError, match="remote state is not encrypted"):
        envelope.open_frame(FRAME_MESSAGE, 5, b"state")
    assert Envelope(keyring, verify_incoming=False).open_frame(FRAME_MESSAGE, 5, b"state") == (FRAME_MESSAGE, b"state")
    assert Envelope(Keyring()).seal_frame(FRAME_MESSAGE, b"x") == FRAME_HEADER.pack(FRAME_MESSAGE, 1) + b"x"


def test_encrypt_needs_a_primary_key() -> None:
    with pytest.raises(ValueError):
        encrypt(Keyring(), b"x", b"")
