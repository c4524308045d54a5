"""The gossip keyring: a primary key that encrypts, and further installed keys that are also tried when
decrypting, so keys can be rotated across a running cluster (Consul's `keyring -install/-use/-remove`).

Keys travel as standard base64 of 16, 24 or 32 bytes (AES-128/192/256); `keygen()` makes Consul's 32-byte
key. The ring persists as Serf's `local.keyring` (a JSON list, primary first). Imports: stdlib, cryptography
(loaded with the first key: an agent without gossip encryption does not pay its start-up time and memory).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


KEY_SIZES = (16, 24, 32)
_BASE64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class KeyringError(ValueError):
    """A key that cannot be installed, used or removed; `str()` is the message Consul gives."""


def keygen() -> str:
    """A new random key, as `consul keygen` prints it: base64 of 32 bytes (AES-256)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def decode_key(text: str) -> bytes:
    """The raw bytes of a base64 key, or KeyringError with Go's wording (the agent prefixes
    "encrypt has invalid key: ")."""
    raw = text.encode("utf-8", "surrogateescape")
    offset = _base64_error_offset(raw)
    if offset is not None:
        raise KeyringError(f"illegal base64 data at input byte {offset}")
    key = base64.b64decode(raw.replace(b"\r", b"").replace(b"\n", b""))
    validate_key(key)
    return key


def validate_key(key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise KeyringError("key size must be 16, 24 or 32 bytes")


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _base64_error_offset(raw: bytes) -> int | None:
    """Where Go's padded standard decoder would stop on `raw`, or None when it decodes. Go reports the
    first byte outside the alphabet, misplaced padding, or the start of an unfinished final quantum."""
    quantum_start = 0
    filled = 0
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte in (0x0A, 0x0D):  # Go skips newlines anywhere
            i += 1
            continue
        if byte == 0x3D:  # '=' ends the input: only allowed as the 3rd/4th character of a quantum
            if filled < 2:
                return i
            j = i + 1
            if filled == 2:
                j = _skip_newlines(raw, j)
                if j == len(raw):
                    return len(raw)
                if raw[j] != 0x3D:
                    return j - 1
                j += 1
            j = _skip_newlines(raw, j)
            return j if j < len(raw) else None
        if byte not in _BASE64_ALPHABET:
            return i
        if filled == 0:
            quantum_start = i
        filled = (filled + 1) % 4
        i += 1
    return quantum_start if filled else None


def _skip_newlines(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in (0x0A, 0x0D):
        i += 1
    return i


class Keyring:
    """The keys this member accepts; the first is the primary, which encrypts everything sent."""

    def __init__(self, keys: list[bytes] | None = None) -> None:
        self._keys: list[bytes] = []
        self._ciphers: list[AESGCM] = []
        for key in keys or []:
            self.install(key)

    @classmethod
    def from_base64(cls, primary: str, others: list[str] | None = None) -> Keyring:
        return cls([decode_key(primary), *(decode_key(k) for k in others or [])])

    def __bool__(self) -> bool:
        return bool(self._keys)

    @property
    def primary(self) -> bytes | None:
        return self._keys[0] if self._keys else None

    def keys(self) -> list[bytes]:
        """Every installed key, primary first."""
        return list(self._keys)

    def primary_cipher(self) -> AESGCM | None:
        return self._ciphers[0] if self._ciphers else None

    def ciphers(self) -> list[AESGCM]:
        """A cipher per installed key, primary first: the order decryption tries them in."""
        return self._ciphers

    def install(self, key: bytes) -> None:
        """Add a key for decryption; the first key installed becomes the primary. Installing twice is a no-op."""
        validate_key(key)
        if key not in self._keys:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._keys.append(key)
            self._ciphers.append(AESGCM(key))

    def use(self, key: bytes) -> None:
        """Make an installed key the primary."""
        if key not in self._keys:
            raise KeyringError("Requested key is not in the keyring")
        index = self._keys.index(key)
        self._keys.insert(0, self._keys.pop(index))
        self._ciphers.insert(0, self._ciphers.pop(index))

    def remove(self, key: bytes) -> None:
        """Drop a key; the primary cannot be removed (rotate with `use` first). Unknown keys are a no-op."""
        if self._keys and key == self._keys[0]:
            raise KeyringError("Removing the primary key is not allowed")
        if key in self._keys:
            index = self._keys.index(key)
            del self._keys[index]
            del self._ciphers[index]

    def save(self, path: Path) -> None:
        """Write the ring as Serf's keyring file (owner-only, replaced atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([encode_key(k) for k in self._keys], f, indent=2)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a keyring file; KeyringError when it is not a JSON list of valid keys."""
        try:
            encoded = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise KeyringError(f"Failed to read keyring file: {e}") from e
        if not isinstance(encoded, list) or not all(isinstance(k, str) for k in encoded):
            raise KeyringError("Failed to read keyring file: not a list of keys")
        return cls([decode_key(k) for k in encoded])
