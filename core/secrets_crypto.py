"""AES-GCM for secret values that leave the process (shared L2 cache, last-known-good file).

The key comes from ``VELTRIX_CACHE_KEY`` (32, 24 or 16 random bytes, as base64 or
hex); ``VELTRIX_CACHE_OLD_KEYS`` (comma-separated, same format) lists keys that
are still accepted for reading during a rotation. New data is always sealed with
the current key. Without a key, :func:`box_from_env` returns ``None`` and callers
do not write secret values anywhere outside the process at all.

Sealed format: ``b"\\x01" + nonce (12 bytes) + ciphertext + tag``; the caller's
``aad`` (for example the Redis key name) is authenticated, so a sealed value
cannot be moved to another key. Key material never appears in messages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Mapping, Sequence

from veltrix.errors import BackendNotInstalledError, ConfigurationError

KEY_ENV = "VELTRIX_CACHE_KEY"
OLD_KEYS_ENV = "VELTRIX_CACHE_OLD_KEYS"
_MAGIC = b"\x01"
_NONCE = 12


def parse_key(text: str, *, name: str) -> bytes:
    """Key bytes from base64 (standard or URL-safe) or hex text."""
    text = text.strip()
    candidates: list[bytes] = []
    if len(text) in (32, 48, 64):
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for raw in candidates:
        if len(raw) in (16, 24, 32):
            return raw
    raise ConfigurationError(
        f"{name} must be 16, 24 or 32 random bytes as base64 or hex "
        "(for example: python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())')"
    )


class SecretBox:
    """Seals with the first key, opens with any of them."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigurationError("SecretBox needs at least one key")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise BackendNotInstalledError(
                "encrypting cached secrets needs the 'cryptography' package: "
                "pip install 'veltrix[redis]'"
            ) from exc
        self._ciphers = [AESGCM(key) for key in keys]

    def __repr__(self) -> str:
        return f"SecretBox(keys={len(self._ciphers)})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._ciphers[0].encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes | None:
        """The plaintext, or ``None`` when no known key opens it (or it was tampered with)."""
        from cryptography.exceptions import InvalidTag

        if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _MAGIC:
            return None
        nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, aad)
            except InvalidTag:
                continue
        return None


def box_from_env(environ: Mapping[str, str] | None = None) -> SecretBox | None:
    """A box for ``VELTRIX_CACHE_KEY`` (+ ``VELTRIX_CACHE_OLD_KEYS``), or ``None`` when unset."""
    env = os.environ if environ is None else environ
    current = env.get(KEY_ENV, "").strip()
    if not current:
        return None
    keys = [parse_key(current, name=KEY_ENV)]
    for item in env.get(OLD_KEYS_ENV, "").split(","):
        if item.strip():
            keys.append(parse_key(item, name=OLD_KEYS_ENV))
    return SecretBox(keys)


__all__ = ["KEY_ENV", "OLD_KEYS_ENV", "SecretBox", "box_from_env", "parse_key"]
