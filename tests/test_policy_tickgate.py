"""The tick's on/off switch (hub/broker_auth/tickgate.py), without a broker; the broker
tests cover it end to end (every revocation test runs with the tick switched off)."""

from __future__ import annotations

import socket
import threading

from hub.broker_auth.tickgate import POKE_USERNAME, STARTUP_POKES, TickGate, poke_broker


class Switch:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.pokes: list[str] = []

    def gate(self, poke_ok: bool = True) -> TickGate:
        g = TickGate(lambda: self.calls.append("register"), lambda: self.calls.append("unregister"),
                     poke=lambda nonce: self.pokes.append(nonce) or True)
        if poke_ok:
            assert g.is_poke(POKE_USERNAME, g.nonce)
        return g


def test_tick_stays_on_until_a_poke_came_through() -> None:
    sw = Switch()
    g = sw.gate(poke_ok=False)
    g.hot()
    assert g.on and sw.calls == [] and g.attention == [False]
    assert not g.is_poke(POKE_USERNAME, "guess") and not g.is_poke("someone", g.nonce)
    assert g.is_poke(POKE_USERNAME, g.nonce) and g.attention == [True]
    g.hot()
    assert not g.on and sw.calls == ["unregister"] and g.attention == [False]


def test_work_registers_the_tick_which_goes_off_after_running() -> None:
    sw = Switch()
    g = sw.gate()
    g.hot()
    assert not g.on
    g.request()  # the background thread has a snapshot: tick is off, so poke
    assert sw.pokes == [g.nonce] and g.attention == [True]
    g.hot()  # traffic: the ACL path registers it
    assert g.on and sw.calls == ["unregister", "register"]
    g.hot()  # until the tick ran, it stays
    assert g.on and g.attention == [True]
    g.tick_started()
    g.hot()  # an ACL check from inside the tick (a kick's side effects) changes nothing
    assert g.on
    g.tick_done()
    g.hot()
    assert not g.on and sw.calls == ["unregister", "register", "unregister"]


def test_idle_broker_is_woken_by_the_poke() -> None:
    sw = Switch()
    g = sw.gate()
    g.hot()
    g.request()
    assert not g.on
    assert g.is_poke(POKE_USERNAME, g.nonce)  # the broker thread answers the poke
    assert g.on and sw.calls[-1] == "register"


def test_work_arriving_during_a_tick_stays_pending() -> None:
    sw = Switch()
    g = sw.gate()
    g.tick_started()
    g.request()  # a newer snapshot while the tick takes the old one
    g.tick_done()
    g.hot()
    assert g.on and g.pending


def test_nudge_pokes_again_while_work_waits_and_at_startup() -> None:
    sw = Switch()
    g = sw.gate(poke_ok=False)
    for _ in range(5):
        g.nudge(now=100.0)  # backoff: once per delay
    assert len(sw.pokes) == 1
    for i in range(STARTUP_POKES + 5):
        g.nudge(now=200.0 + i * 20)
    assert len(sw.pokes) == STARTUP_POKES
    sw = Switch()
    g = sw.gate()
    g.nudge()
    assert sw.pokes == []
    g.hot()
    g.pending = True
    g.nudge()
    g.nudge()
    assert len(sw.pokes) == 2


def test_poke_broker_sends_a_connect_and_reads_the_answer() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            got.append(conn.recv(200))
            conn.sendall(b"\x20\x02\x00\x05")

    t = threading.Thread(target=serve)
    t.start()
    assert poke_broker("127.0.0.1", port, "nonce-123")
    t.join(5)
    srv.close()
    assert got[0][0] == 0x10 and POKE_USERNAME.encode() in got[0] and got[0].endswith(b"nonce-123")
    assert not poke_broker("127.0.0.1", port, "x", timeout=0.5)  # nobody listens any more
