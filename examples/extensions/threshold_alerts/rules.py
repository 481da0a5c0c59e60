"""Threshold rules: which sequence, its range, who is told; and whether a value leaves it."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from hub import paths
from hub.errors import SettingsError

SETTING = "THRESHOLD_ALERTS_RULES"


@dataclass(frozen=True)
class Rule:
    sequence: str  # canonical path
    low: float | None
    high: float | None
    to: tuple[str, ...]

    def outside(self, value: float) -> bool:
        return (self.low is not None and value < self.low) or (self.high is not None and value > self.high)

    def describe(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "+inf" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high}]"

    def as_json(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "min": self.low, "max": self.high, "to": list(self.to)}


def _bound(i: int, raw: dict[str, Any], name: str) -> float | None:
    v = raw.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SettingsError(f"{SETTING}[{i}]: \"{name}\" must be a finite number")
    return float(v)


def parse(items: list[Any]) -> list[Rule]:
    """The rules of the setting, or SettingsError saying which one is wrong and how."""
    out = []
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise SettingsError(f"{SETTING}[{i}] must be a dict with \"sequence\", \"min\" and/or \"max\", \"to\"")
        unknown = set(raw) - {"sequence", "min", "max", "to"}
        if unknown:
            raise SettingsError(f"{SETTING}[{i}]: unknown key {sorted(unknown)[0]!r}")
        seq = raw.get("sequence")
        if not isinstance(seq, str) or not seq:
            raise SettingsError(f"{SETTING}[{i}]: \"sequence\" must be a sequence's path")
        try:
            path = paths.normalize(seq)
        except Exception as e:  # noqa: BLE001 - the hub's path rule says why
            raise SettingsError(f"{SETTING}[{i}]: {getattr(e, 'message', e)}") from e
        low, high = _bound(i, raw, "min"), _bound(i, raw, "max")
        if low is None and high is None:
            raise SettingsError(f"{SETTING}[{i}]: give \"min\", \"max\" or both")
        if low is not None and high is not None and low > high:
            raise SettingsError(f"{SETTING}[{i}]: \"min\" {low:g} is above \"max\" {high:g}")
        to = raw.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise SettingsError(f"{SETTING}[{i}]: \"to\" must be an email address or a list of them")
        out.append(Rule(path, low, high, tuple(to)))
    return out


class Watch:
    """Which rules' sequences are out of range now: one alert when a value leaves the
    range, none while it stays out, and the next once it has come back and left again."""

    def __init__(self, rules: list[Rule]) -> None:
        self.by_path: dict[str, list[Rule]] = {}
        for r in rules:
            self.by_path.setdefault(r.sequence, []).append(r)
        self._out: set[Rule] = set()
        self._lock = threading.Lock()

    def crossings(self, path: str, value: Any) -> list[Rule]:
        """The rules `value` (for `path`) just left the range of."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return []
        left = []
        with self._lock:
            for r in self.by_path.get(path, []):
                if r.outside(value):
                    if r not in self._out:
                        self._out.add(r)
                        left.append(r)
                else:
                    self._out.discard(r)
        return left
