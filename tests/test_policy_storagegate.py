"""The storage gate's decisions, in plain Python (hub/broker_auth/storagegate.py); the
broker doing what they say is tests/test_storage_gate.py."""

from __future__ import annotations

from hub.broker_auth.policy import ACL_SUBSCRIBE, ACL_UNSUBSCRIBE, KEY, PERSISTER, SERVICE, TOKEN, ClientState
from hub.broker_auth.storagegate import EXPIRY_MARGIN, GroupWatch, StorageGate

TOPIC = "$share/persist/#"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(required: bool = True, expiry: float = 3600) -> tuple[StorageGate, list[str], Clock]:
    lines: list[str] = []
    clock = Clock()
    return StorageGate("persist", expiry, lambda _lvl, msg: lines.append(msg), required, clock), lines, clock


def persister(client_id: str = "p1") -> ClientState:
    return ClientState(client_id, PERSISTER, "hub-persister")


def test_closed_until_a_persister_subscribes_to_the_whole_group() -> None:
    g, lines, _ = gate()
    controller, browser, service = ClientState("c", KEY, "key x"), ClientState("b", TOKEN, "t"), \
        ClientState("s", SERVICE, "hub-service")
    assert g.closed[0]
    assert not g.admits(controller) and not g.admits(controller)
    assert g.admits(browser) and g.admits(service) and g.admits(None)
    assert g.cuts(controller) and g.cuts(browser) and g.cuts(service) and not g.cuts(persister())
    assert g.held == 2 and sum("holding back" in x for x in lines) == 1  # logged once
    g.acl(persister(), "h", ACL_SUBSCRIBE, "$share/notify/#", True)  # the notifier's group
    g.acl(persister(), "h", ACL_SUBSCRIBE, "$share/persist/acme/#", True)  # not every folder
    g.acl(ClientState("x", KEY, "k"), "h", ACL_SUBSCRIBE, TOPIC, True)  # not a persister
    g.acl(persister(), "h", ACL_SUBSCRIBE, TOPIC, False)  # refused
    assert g.closed[0]
    g.acl(persister(), "h", ACL_SUBSCRIBE, TOPIC, True)
    assert not g.closed[0] and g.admits(controller) and not g.cuts(controller)
    assert g.stats()["storage_gate"] == "open" and g.stats()["persisters_subscribed"] == 1


def test_last_unsubscribe_or_ended_session_closes_it() -> None:
    g, lines, _ = gate()
    g.acl(persister("p1"), "h1", ACL_SUBSCRIBE, TOPIC, True)
    g.acl(persister("p2"), "h2", ACL_SUBSCRIBE, TOPIC, True)
    g.acl(persister("p1"), "h1", ACL_UNSUBSCRIBE, TOPIC, True)
    assert not g.closed[0]
    g.disconnected(persister("p2"), "other-handle", keeps_session=False)  # an older connection of p2
    assert not g.closed[0]
    g.disconnected(persister("p2"), "h2", keeps_session=False)
    assert g.closed[0] and "storage gate closed" in lines[-1]


def test_a_kept_session_holds_it_open_until_its_expiry() -> None:
    g, lines, clock = gate(expiry=3600)
    g.acl(persister(), "h", ACL_SUBSCRIBE, TOPIC, True)
    g.disconnected(persister(), "h", keeps_session=True)  # killed: its session keeps its share
    assert not g.closed[0] and g.stats()["persister_sessions_away"] == 1
    assert g.due == clock.now + 3600 - EXPIRY_MARGIN
    clock.now = g.due - 1
    g.expire()
    assert not g.closed[0]
    g.acl(persister(), "h2", ACL_SUBSCRIBE, TOPIC, True)  # back in time: online again
    g.disconnected(persister(), "h2", keeps_session=True)
    clock.now += 3600
    g.expire()
    assert g.closed[0] and any("has been away" in x for x in lines)


def test_session_expiry_too_short_to_count_on_is_an_ended_session() -> None:
    g, _, _ = gate(expiry=0)
    g.acl(persister(), "h", ACL_SUBSCRIBE, TOPIC, True)
    g.disconnected(persister(), "h", keeps_session=True)
    assert g.closed[0]


def test_off_never_closes() -> None:
    g, _, _ = gate(required=False)
    assert not g.closed[0] and g.admits(ClientState("c", KEY, "k")) and not g.cuts(ClientState("c", KEY, "k"))
    assert g.stats()["storage_gate"] == "off"


def test_the_notifier_group_is_watched_for_health_only() -> None:
    w = GroupWatch("notifier", "notify")
    assert w.stats() == {"notifiers_subscribed": None}  # none seen yet: nothing to report
    w.acl(persister("n1"), "h", ACL_SUBSCRIBE, "$share/notify/#", True)
    w.acl(persister("p1"), "h2", ACL_SUBSCRIBE, TOPIC, True)  # a persister: not the notifier
    assert w.stats() == {"notifiers_subscribed": 1}
    w.disconnected(persister("n1"), "h")
    assert w.stats() == {"notifiers_subscribed": 0}
