"""Utilization scripts for the fake backend: "85" or "0-120s:90,120s-:0".

A script is either one number (percent, constant) or comma-separated segments
`START-END:PERCENT`, times relative to a start (the pod's start for a pod
annotation, the agent's start for a GPU script). Times take a unit (`ms`, `s`,
`m`, `h`; bare numbers are seconds); an empty END is open-ended. The first
segment covering the moment wins; outside every segment the value is None and
the caller's default applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"bad duration {text!r} (e.g. 90, 90s, 2m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"bad utilization {text!r} (a percent, 0-100)") from None
    if not 0 <= value <= 100:
        raise ValueError(f"utilization {value} outside 0-100")
    return value


@dataclass(frozen=True)
class Segment:
    start: float
    end: float | None
    value: float


@dataclass(frozen=True)
class Schedule:
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = text.strip()
        if not text:
            raise ValueError("empty utilization script")
        if ":" not in text:
            return cls((Segment(0.0, None, _percent(text)),))
        segments = []
        for part in text.split(","):
            span, sep, value = part.rpartition(":")
            start, dash, end = span.partition("-")
            if not sep or not dash:
                raise ValueError(
                    f"bad segment {part.strip()!r} (START-END:PERCENT, e.g. 0-120s:90)"
                )
            segment = Segment(
                parse_duration(start), parse_duration(end) if end.strip() else None, _percent(value)
            )
            if segment.end is not None and segment.end <= segment.start:
                raise ValueError(f"segment {part.strip()!r} ends before it starts")
            segments.append(segment)
        return cls(tuple(segments))

    def value_at(self, elapsed: float) -> float | None:
        for segment in self.segments:
            if segment.start <= elapsed and (segment.end is None or elapsed < segment.end):
                return segment.value
        return None
