"""The bytes of a compacted block: many values of one sequence in one zstd frame.

Two encodings, chosen per block by what the values are:

- numeric (every value a number, all of one recorded size): timestamps as delta-of-delta,
  values as integers scaled by 10**d where that is exact for every value of the
  block (`k / 10**d` gives back the very float stored), else as the float's bits
  XOR'd with the previous one's (Gorilla). Both integer streams are zig-zagged,
  split into byte planes (all high bytes of small numbers side by side) and
  compressed with zstandard;
- general (text, JSON, small images, bulk keys, mixed): a JSON list of
  [delta t, kind, value, size] compressed with zstandard.

Decoding gives back exactly what was encoded: floats bit for bit, text as it was,
bulk values as their keys. A damaged block raises `CorruptBlock`: zstd frames
carry a checksum, and the value count is checked.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from array import array
from dataclasses import dataclass
from itertools import accumulate

import zstandard

_LEVEL = 9
# kind, decimals (255: XOR'd floats), count, first time, first scaled value, every value's size
_HEADER = struct.Struct("<BBIqqI")
_NUMERIC, _GENERAL = 1, 2
_XOR = 255
_MAX_DECIMALS = 9
_MASK = (1 << 64) - 1


class CorruptBlock(Exception):
    """The block's bytes do not decode."""


@dataclass(slots=True)
class Value:
    """One stored value of a sequence, wherever it lives (a row or a block).
    `id` is the row's id, None for a value inside a block."""

    timestamp_us: int
    num: float | None = None
    text: str | None = None
    data: bytes | None = None
    bulk_key: str | None = None
    size: int = 8
    id: int | None = None
    resource_id: int | None = None


@dataclass(slots=True)
class Decoded:
    """A block's contents as columns: `times` always; `nums` for a numeric block (every
    value a number of `size` bytes), else `vals`. `values(lo, hi)` builds Values for a slice."""

    times: list[int]
    nums: list[float] | None
    vals: list[Value] | None
    size: int = 8

    def __len__(self) -> int:
        return len(self.times)

    def values(self, lo: int = 0, hi: int | None = None) -> list[Value]:
        if self.vals is not None:
            return self.vals[lo:hi]
        assert self.nums is not None
        size = self.size
        return [Value(t, x, None, None, None, size) for t, x in zip(self.times[lo:hi], self.nums[lo:hi],
                                                                     strict=True)]


def _plain_numbers(vals: list[Value]) -> bool:
    size = vals[0].size if vals else -1
    return 0 <= size < 2 ** 32 and all(v.num is not None and v.text is None and v.data is None and
                                       v.bulk_key is None and v.size == size for v in vals)


def encode(vals: list[Value]) -> bytes:
    """`vals` sorted by time, timestamps distinct."""
    if vals and _plain_numbers(vals):
        return _encode_numeric(vals)
    return _encode_general(vals)


def decode(blob: bytes) -> Decoded:
    try:
        raw = zstandard.ZstdDecompressor().decompress(blob)
        kind, decimals, n, t0, k0, size = _HEADER.unpack_from(raw)
        out = (_decode_numeric(raw, decimals, n, t0, k0, size) if kind == _NUMERIC else
               _decode_general(raw, n, t0) if kind == _GENERAL else None)
    except (zstandard.ZstdError, struct.error, ValueError, TypeError, KeyError, IndexError) as e:
        raise CorruptBlock(f"{type(e).__name__}: {e}") from None
    if out is None or len(out) != n:
        raise CorruptBlock(f"holds {0 if out is None else len(out)} values, its header says {n}")
    return out


def _compress(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=_LEVEL, write_checksum=True).compress(raw)


def _zigzag(xs: list[int]) -> bytes:
    return array("Q", [((x << 1) ^ (x >> 63)) & _MASK for x in xs]).tobytes()


def _unzigzag(b: bytes) -> list[int]:
    return [(z >> 1) ^ -(z & 1) for z in array("Q", b)]


def _planes(b: bytes) -> bytes:
    """Byte j of every 8-byte word, for j = 0..7: runs of zeros zstd folds away."""
    return b"".join(b[j::8] for j in range(8))


def _unplanes(b: bytes, n: int) -> bytes:
    out = bytearray(8 * n)
    for j in range(8):
        out[j::8] = b[j * n:(j + 1) * n]
    return bytes(out)


def _time_stream(ts: list[int]) -> list[int]:
    deltas = [b - a for a, b in zip(ts, ts[1:], strict=False)]
    return deltas[:1] + [b - a for a, b in zip(deltas, deltas[1:], strict=False)]


def _decimals(nums: list[float]) -> tuple[int, list[int]] | None:
    """The fewest decimals d with k / 10**d == v for every value (and k small), or None."""
    if any(v == 0 and math.copysign(1.0, v) < 0 for v in nums):
        return None  # -0.0 would come back as 0.0
    d = _fewest(nums[:32], 0)  # a guess from the first few, then all of them
    while d is not None:
        p = 10 ** d
        try:
            ks = [round(v * p) for v in nums]
        except OverflowError:
            return None
        if all(k / p == v for k, v in zip(ks, nums, strict=True)) and max(map(abs, ks)) < 2 ** 53:
            return d, ks
        d = _fewest(nums, d + 1)
    return None


def _fewest(nums: list[float], start: int) -> int | None:
    for d in range(start, _MAX_DECIMALS + 1):
        p = 10 ** d
        if all(math.isfinite(v * p) and round(v * p) / p == v for v in nums):
            return d
    return None


def _encode_numeric(vals: list[Value]) -> bytes:
    ts = [v.timestamp_us for v in vals]
    nums = [float(v.num) for v in vals]  # type: ignore[arg-type]  # _plain_numbers
    scaled = _decimals(nums)
    if scaled is not None:
        decimals, ks = scaled
        k0 = ks[0]
        body = _zigzag([b - a for a, b in zip(ks, ks[1:], strict=False)])
    else:
        bits = array("Q", array("d", nums).tobytes())
        decimals, k0 = _XOR, bits[0] - (1 << 64 if bits[0] >> 63 else 0)  # the header's field is signed
        body = array("Q", [a ^ b for a, b in zip(bits, bits[1:], strict=False)]).tobytes()
    head = _HEADER.pack(_NUMERIC, decimals, len(vals), ts[0], k0, vals[0].size)
    return _compress(head + _planes(_zigzag(_time_stream(ts))) + _planes(body))


def _decode_numeric(raw: bytes, decimals: int, n: int, t0: int, k0: int, size: int) -> Decoded:
    if n == 0:
        return Decoded([], [], None, size)
    off = _HEADER.size
    m = 8 * (n - 1)
    if len(raw) != off + 2 * m:
        raise ValueError("numeric block of the wrong length")
    times = list(accumulate(accumulate(_unzigzag(_unplanes(raw[off:off + m], n - 1))), initial=t0))
    body = _unplanes(raw[off + m:], n - 1) if n > 1 else b""
    if decimals == _XOR:
        words = list(accumulate(array("Q", body), lambda a, b: a ^ b, initial=k0 & _MASK))
        nums = list(array("d", array("Q", words).tobytes()))
    else:
        p = 10 ** decimals
        nums = [k / p for k in accumulate(_unzigzag(body), initial=k0)]
    if len(nums) != len(times):
        raise ValueError("numeric block with more times than values")
    return Decoded(times, nums, None, size)


def _encode_general(vals: list[Value]) -> bytes:
    rows: list[list[object]] = []
    prev = vals[0].timestamp_us if vals else 0
    value: object
    for v in vals:
        if v.bulk_key is not None:
            kind, value = "b", v.bulk_key
        elif v.num is not None:
            kind, value = "n", v.num
        elif v.text is not None:
            kind, value = "t", v.text
        elif v.data is not None:
            kind, value = "d", base64.b64encode(v.data).decode()
        else:
            kind, value = "0", None
        rows.append([v.timestamp_us - prev, kind, value, v.size])
        prev = v.timestamp_us
    t0 = vals[0].timestamp_us if vals else 0
    head = _HEADER.pack(_GENERAL, 0, len(vals), t0, 0, 0)
    return _compress(head + json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode())


def _decode_general(raw: bytes, n: int, t0: int) -> Decoded:
    out: list[Value] = []
    t = t0
    for dt, kind, value, size in json.loads(raw[_HEADER.size:]):
        t += int(dt)
        v = Value(t, size=int(size))
        if kind == "b":
            v.bulk_key = str(value)
        elif kind == "n":
            v.num = float(value)
        elif kind == "t":
            v.text = str(value)
        elif kind == "d":
            v.data = base64.b64decode(value, validate=True)
        elif kind != "0":
            raise ValueError(f"unknown value kind {kind!r}")
        out.append(v)
    return Decoded([v.timestamp_us for v in out], None, out, 0)
