"""paho's `Client` with shortcuts for high message rates.

paho-mqtt 2.x spends most of its time per message outside the network:
three or four `recv` calls per packet (command byte, length bytes, body), a
`ReasonCode` and a `Properties` object per PUBACK, an `MQTTMessage` with its
`Properties` and a topic-matcher walk per PUBLISH, and one packet plus one
wake-up of the network thread per acknowledgement. `FastClient` keeps paho
for everything else (connect, auth, keepalive, subscribe, reconnect, TLS) and
overrides some of its internal methods:

- `_sock_recv` reads up to 256 KiB at once and serves packets from that
  buffer (`loop_read` keeps going while the buffer holds data, `reconnect`
  drops it); `_packet_read` takes a packet that is whole in the buffer in one
  slice;
- `_handle_pubackcomp`: a successful PUBACK without properties skips decoding
  and passes shared, read-only success objects to `on_publish`;
- `_handle_publish`: with `on_fast_message(topic, payload, mid, qos)` set, an
  MQTT 5 QoS 0/1 PUBLISH goes straight to it (no `MQTTMessage`, no matcher;
  with manual acknowledgement, as paho's own path, nothing is acked here);
- `_packet_write` sends queued QoS 1 PUBLISH / PUBACK packets in one write;
- `ack_many(mids)` queues many PUBACKs as one packet.

These are private paho methods: `SUPPORTED` is False (and the plain paho
paths are used) if this paho does not have them with the expected shape; the
persister and controller tests exercise both paths' results end to end.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

READ_SIZE = 262_144
WRITE_SIZE = 65_536
_PUBACK = struct.Struct("!BBH")
_PUBACK_CMD = 0x40


def _supported() -> bool:
    c = mqtt.Client
    try:
        return (list(inspect.signature(c._packet_queue).parameters)[:5]
                == ["self", "command", "packet", "mid", "qos"]
                and all(hasattr(c, n) for n in ("_sock_recv", "_handle_publish", "_handle_pubackcomp",
                                                 "_do_on_publish", "loop_read", "reconnect",
                                                 "_packet_write", "_packet_read", "_packet_handle"))
                and hasattr(mqtt, "time_func"))
    except (AttributeError, TypeError, ValueError):
        return False


SUPPORTED = _supported()


def _var_int(buf: bytes | bytearray, i: int, end: int) -> tuple[int, int] | None:
    """MQTT's variable byte integer at buf[i]: (value, index after it); None if it does not
    end before `end`."""
    value, mult = 0, 1
    while i < end:
        b = buf[i]
        i += 1
        value += (b & 127) * mult
        if not b & 128:
            return value, i
        mult *= 128
    return None


def _plain(p: Any) -> bool:
    """A whole, unsent QoS 1 PUBLISH or a PUBACK."""
    cmd = p["command"] & 0xF0
    return p["pos"] == 0 and (cmd == _PUBACK_CMD or (cmd == 0x30 and p["qos"] > 0))
FastHandler = Callable[[str, bytes, int, int], None]


class FastClient(mqtt.Client):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.on_fast_message: FastHandler | None = None
        self._rbuf = b""
        self._rpos = 0
        self._puback_reasons: dict[int, ReasonCode] = {}
        self._no_props = Properties(PacketTypes.PUBACK)

    def sent_message(self, mid: int) -> tuple[str, bytes] | None:
        """(topic, payload) of an outgoing message not yet released, e.g. from
        inside `on_publish`; None if unknown."""
        m = getattr(self, "_out_messages", {}).get(mid)
        return None if m is None else (m.topic, bytes(m.payload))

    if SUPPORTED:
        def reconnect(self) -> MQTTErrorCode:
            self._rbuf, self._rpos = b"", 0
            return super().reconnect()

        def _sock_recv(self, bufsize: int) -> bytes:
            if self._rpos >= len(self._rbuf):
                data = super()._sock_recv(max(bufsize, READ_SIZE))
                if len(data) <= bufsize:
                    self._rbuf, self._rpos = b"", 0
                    return data
                self._rbuf, self._rpos = data, 0
            end = self._rpos + bufsize
            out = self._rbuf[self._rpos:end]
            self._rpos = min(end, len(self._rbuf))
            return out

        def _packet_read(self) -> MQTTErrorCode:
            # A whole packet in the buffer, at a packet boundary: take it in one slice
            # (paho reads command, length and body with separate calls).
            buf, pos = self._rbuf, self._rpos
            n = len(buf)
            if self._in_packet["command"] != 0 or n - pos < 2:
                return super()._packet_read()
            found = _var_int(buf, pos + 1, min(n, pos + 5))
            if found is None:
                return super()._packet_read()  # length not all here (or malformed): paho's way
            length, i = found
            if i + length > n:
                return super()._packet_read()
            self._rpos = i + length
            self._in_packet = {"command": buf[pos], "have_remaining": 1, "remaining_count": [],
                               "remaining_mult": 1, "remaining_length": length,
                               "packet": buf[i:i + length],  # type: ignore[typeddict-item]
                               "to_process": 0, "pos": 0}
            try:
                rc = self._packet_handle()
            except MalformedPacket:
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
            self._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
                               "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            return rc

        def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
            rc = super().loop_read(max_packets)
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None \
                    and self._rpos < len(self._rbuf):
                rc = super().loop_read(max_packets)
            return rc

        def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
            packet = self._in_packet["packet"]
            n = len(packet)
            # mid [reason code [empty property list]]; codes below 0x80 are successes
            # (0x10: "no matching subscribers")
            code = packet[2] if n > 2 else 0
            if cmd != "PUBACK" or n > 4 or (n == 4 and packet[3] != 0) or code >= 0x80:
                return super()._handle_pubackcomp(cmd)
            reason = self._puback_reasons.get(code)
            if reason is None:
                reason = self._puback_reasons[code] = ReasonCode(PacketTypes.PUBACK, identifier=code)
            mid = (packet[0] << 8) | packet[1]
            with self._out_message_mutex:
                if mid in self._out_messages:
                    return self._do_on_publish(mid, reason, self._no_props)
            return MQTTErrorCode.MQTT_ERR_SUCCESS

        def _handle_publish(self) -> MQTTErrorCode:
            handler = self.on_fast_message
            cmd = self._in_packet["command"]
            qos = (cmd & 0x06) >> 1
            if handler is None or qos > 1 or self._protocol != mqtt.MQTTv5:
                return super()._handle_publish()
            pkt = self._in_packet["packet"]
            n = (pkt[0] << 8) | pkt[1]
            pos = 2 + n
            topic = bytes(pkt[2:pos])
            mid = 0
            if qos:
                mid = (pkt[pos] << 8) | pkt[pos + 1]
                pos += 2
            found = _var_int(pkt, pos, len(pkt))  # the properties' length; we skip them
            if found is None or not topic:  # malformed, or a topic alias: paho's way
                return super()._handle_publish()
            plen, pos = found
            try:
                text = topic.decode()
            except UnicodeDecodeError:
                text = "(topic is not UTF-8)"
            handler(text, bytes(pkt[pos + plen:]), mid, qos)
            return MQTTErrorCode.MQTT_ERR_SUCCESS

        def _packet_write(self) -> MQTTErrorCode:
            # Coalesce queued QoS 1 PUBLISH and PUBACK packets (nothing happens after they are
            # written) into one send. Only this (network) thread takes from the left.
            dq = self._out_packet
            if len(dq) > 1 and _plain(dq[0]):
                parts: list[bytes | bytearray] = []
                size = 0
                while dq and size < WRITE_SIZE and _plain(dq[0]):
                    p = dq.popleft()
                    parts.append(p["packet"])
                    size += len(p["packet"])
                if len(parts) > 1:
                    merged = b"".join(parts)
                    dq.appendleft({"command": _PUBACK_CMD, "mid": 0, "qos": 0, "pos": 0,
                                   "to_process": len(merged), "packet": merged, "info": None})
                else:
                    dq.appendleft(p)
            return super()._packet_write()

        def ack_many(self, mids: Iterable[int]) -> None:
            """PUBACK (success) for each message id, in one write."""
            data = b"".join([_PUBACK.pack(_PUBACK_CMD, 2, m) for m in mids])
            if data:
                self._packet_queue(_PUBACK_CMD, data, 0, 0)
    else:  # pragma: no cover - another paho: the plain paths
        def ack_many(self, mids: Iterable[int]) -> None:
            for m in mids:
                self.ack(m, 1)
