"""Gossip's envelope on the wire, pure functions the transport calls on every datagram and stream: AES-GCM
in memberlist's version-1 framing (version byte, 12-byte nonce, ciphertext and 16-byte tag; version 0 still
opens), the optional label header and the CRC on plain text. A packet's authenticated data is its label; a
stream frame's is its 5-byte header plus the label. Imports: stdlib, cryptography, this package's keyring.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from consulpy.gossip.keyring import Keyring

ENCRYPTION_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
ENCRYPT_OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE
_BLOCK_SIZE = 16

# Leading bytes, numbered as memberlist numbers its message types, so that none is the first byte of the
# core's msgpack (an array or an ext type, always >= 0x80) or of an encryption version (0 or 1).
HAS_CRC = 12
HAS_LABEL = 244
CRC_OVERHEAD = 5
LABEL_MAX_SIZE = 255

# A stream frame is a kind byte and a 4-byte big-endian length, then the body.
FRAME_MESSAGE = 0  # the core's stream payload
FRAME_ENCRYPTED = 10  # encrypted (kind byte + body) of a message or error frame
FRAME_ERROR = 13  # UTF-8 text: why the other side dropped our frame
FRAME_HEADER = struct.Struct(">BI")

NO_KEY_DECRYPTS = "No installed keys could decrypt the message"


class EnvelopeError(Exception):
    """Input that is dropped: `reason` is the log/error text, `counter` the statistic it is counted under."""

    def __init__(self, reason: str, counter: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counter = counter


@dataclass(slots=True, frozen=True)
class Envelope:
    """How this member wraps what it sends and checks what it receives.

    With a non-empty keyring, `verify_outgoing` encrypts everything sent and `verify_incoming` drops
    anything no installed key decrypts (Consul's encrypt_verify_outgoing/incoming, both on by default; off
    only while a running cluster is switched over to encryption)."""

    keyring: Keyring
    label: str = ""
    verify_incoming: bool = True
    verify_outgoing: bool = True

    def __post_init__(self) -> None:
        if len(self.label.encode()) > LABEL_MAX_SIZE:
            raise ValueError(f"label {self.label!r} is too long")

    @property
    def encrypts(self) -> bool:
        return bool(self.keyring) and self.verify_outgoing

    def packet_overhead(self) -> int:
        """Bytes the envelope adds to a packet, which the core's packet budget must leave room for.
        Encryption's share is reserved even in plain text, so a keyring filled later still fits."""
        return len(_label_header(self.label)) + CRC_OVERHEAD + ENCRYPT_OVERHEAD

    # ---- packets --------------------------------------------------------------------------------------

    def seal_packet(self, data: bytes) -> bytes:
        body = HAS_CRC.to_bytes(1, "big") + zlib.crc32(data).to_bytes(4, "big") + data
        if self.encrypts:
            body = encrypt(self.keyring, body, self.label.encode())
        return _label_header(self.label) + body

    def open_packet(self, data: bytes) -> bytes:
        """The core's packet inside a datagram; EnvelopeError when it must be dropped."""
        data, label = _remove_label(data)
        if label != self.label:
            raise EnvelopeError(f"discarding packet with unacceptable label {label!r}", "packets_bad_label")
        if self.keyring:
            try:
                data = decrypt(self.keyring, data, label.encode())
            except EnvelopeError:
                if self.verify_incoming:
                    raise
        if len(data) >= CRC_OVERHEAD and data[0] == HAS_CRC:
            if zlib.crc32(data[CRC_OVERHEAD:]) != int.from_bytes(data[1:CRC_OVERHEAD], "big"):
                raise EnvelopeError("Got invalid checksum for UDP packet", "packets_bad_checksum")
            data = data[CRC_OVERHEAD:]
        return data

    # ---- streams --------------------------------------------------------------------------------------

    def stream_prefix(self) -> bytes:
        """What opens every stream this member starts or answers: the label header, if any."""
        return _label_header(self.label)

    def seal_frame(self, kind: int, body: bytes) -> bytes:
        if not self.encrypts:
            return FRAME_HEADER.pack(kind, len(body)) + body
        header = FRAME_HEADER.pack(FRAME_ENCRYPTED, encrypted_length(len(body) + 1))
        return header + encrypt(self.keyring, bytes((kind,)) + body, header + self.label.encode())

    def open_frame(self, kind: int, length: int, body: bytes) -> tuple[int, bytes]:
        """(kind, body) of a received frame once decrypted; EnvelopeError when it must be dropped."""
        if kind == FRAME_ENCRYPTED:
            if not self.keyring:
                raise EnvelopeError("remote state is encrypted and encryption is not configured",
                                    "streams_undecryptable")
            try:
                plain = decrypt(self.keyring, body, FRAME_HEADER.pack(kind, length) + self.label.encode())
            except EnvelopeError as e:
                raise EnvelopeError(e.reason, "streams_undecryptable") from None
            if not plain or plain[0] not in (FRAME_MESSAGE, FRAME_ERROR):
                raise EnvelopeError("unknown stream frame", "streams_malformed")
            return plain[0], plain[1:]
        if kind not in (FRAME_MESSAGE, FRAME_ERROR):
            raise EnvelopeError(f"unknown stream frame kind {kind}", "streams_malformed")
        if self.keyring and self.verify_incoming:
            raise EnvelopeError("encryption is configured but remote state is not encrypted",
                                "streams_undecryptable")
        return kind, body

    def check_stream_label(self, label: str) -> None:
        if label != self.label:
            raise EnvelopeError(f"discarding stream with unacceptable label {label!r}", "streams_bad_label")


def encrypted_length(plain: int) -> int:
    return ENCRYPT_OVERHEAD + plain


def encrypt(keyring: Keyring, plain: bytes, authenticated: bytes) -> bytes:
    """Version 1: version byte, random nonce, then ciphertext and tag under the primary key."""
    cipher = keyring.primary_cipher()
    if cipher is None:
        raise ValueError("no primary key to encrypt with")
    nonce = os.urandom(NONCE_SIZE)
    return bytes((ENCRYPTION_VERSION,)) + nonce + cipher.encrypt(nonce, plain, authenticated or None)


def decrypt(keyring: Keyring, data: bytes, authenticated: bytes) -> bytes:
    """The plain text, trying every installed key; EnvelopeError when none opens it."""
    if not data:
        raise EnvelopeError("cannot decrypt empty payload", "packets_undecryptable")
    version = data[0]
    if version > ENCRYPTION_VERSION:
        raise EnvelopeError(f"unsupported encryption version {version}", "packets_undecryptable")
    if len(data) < ENCRYPT_OVERHEAD + (_BLOCK_SIZE if version == 0 else 0):
        raise EnvelopeError(f"payload is too small to decrypt: {len(data)}", "packets_undecryptable")
    from cryptography.exceptions import InvalidTag  # loaded with the keyring's first key already

    nonce, sealed = data[1:1 + NONCE_SIZE], data[1 + NONCE_SIZE:]
    for cipher in keyring.ciphers():
        try:
            plain = cipher.decrypt(nonce, sealed, authenticated or None)
        except InvalidTag:
            continue
        return _pkcs7_unpad(plain) if version == 0 else plain
    raise EnvelopeError(NO_KEY_DECRYPTS, "packets_undecryptable")


def _pkcs7_unpad(plain: bytes) -> bytes:
    pad = plain[-1] if plain else 0
    if not 1 <= pad <= _BLOCK_SIZE or pad > len(plain):
        raise EnvelopeError("invalid padding", "packets_undecryptable")
    return plain[:-pad]


def _label_header(label: str) -> bytes:
    if not label:
        return b""
    encoded = label.encode()
    return bytes((HAS_LABEL, len(encoded))) + encoded


def _remove_label(data: bytes) -> tuple[bytes, str]:
    if not data or data[0] != HAS_LABEL:
        return data, ""
    if len(data) < 2 or data[1] < 1 or len(data) < 2 + data[1]:
        raise EnvelopeError("cannot decode label; packet has been truncated", "packets_bad_label")
    size = data[1]
    return data[2 + size:], data[2:2 + size].decode("utf-8", "replace")
