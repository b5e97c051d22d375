"""How Veltrix keys are laid out in ConfigMap and Secret data keys (the ``k8s://`` layout).

The API store keeps every key that shares a first segment below its URL prefix in
one object; the object's data key for a key is the rest of the key, with ``_``
written ``__``, ``/`` written ``_s`` and a leading ``.`` written ``_d`` (``_`` alone
for the key that is the first segment itself). A volume that mounts such an object
reads the same keys back with ``layout=veltrix``. No client library is imported here.
"""

from __future__ import annotations

SELF_DATA_KEY = "_"
_DATA_ESCAPES = {"_": "__", "/": "_s"}
_DATA_UNESCAPES = {"_": "_", "s": "/", "d": "."}


def encode_data_key(rest: str) -> str:
    """The data key of ``rest`` (the key below its first segment; ``""`` for none)."""
    if not rest:
        return SELF_DATA_KEY
    encoded = "".join(_DATA_ESCAPES.get(char, char) for char in rest)
    return "_d" + encoded[1:] if encoded.startswith(".") else encoded


def decode_data_key(data_key: str) -> str | None:
    """The rest of a key that ``data_key`` encodes; ``None`` when it encodes none."""
    if data_key == SELF_DATA_KEY:
        return ""
    out: list[str] = []
    chars = iter(data_key)
    for char in chars:
        if char != "_":
            out.append(char)
            continue
        code = next(chars, "")
        if code not in _DATA_UNESCAPES:
            return None
        out.append(_DATA_UNESCAPES[code])
    rest = "".join(out)
    return rest if rest and encode_data_key(rest) == data_key else None


__all__ = ["SELF_DATA_KEY", "decode_data_key", "encode_data_key"]
