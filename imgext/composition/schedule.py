"""Event schedules: when each one-shot of an object sounds, drawn from a seeded spec (in the spirit of Scaper).

A spec (:class:`EventSpec`) holds distributions; :func:`schedule_events` draws
concrete :class:`Event` values from it; the arrangement renders only from those
values, so a saved schedule re-renders exactly (Scaper's spec -> instantiate ->
render).  Onsets have a minimum gap and no fixed period: the free time between
events is split by gamma-distributed shares (coefficient of variation about
0.8), so a bark in a 30 s scene comes three or four times at irregular moments,
not every second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from imgext.errors import ParameterError

__all__ = ["Event", "EventSpec", "Region", "expected_count", "schedule_events"]

_GAP_SHAPE = 1.5  # gamma shape of the shares of free time: CV of the gaps about 1/sqrt(1.5) = 0.8
_END_MARGIN_S = 0.05  # an event ends at least this long before the scene does


@dataclass(frozen=True)
class Region:
    """A part of the source that holds one event: ``[start_s, end_s)`` of the decoded source, in seconds."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Event:
    """One scheduled event.

    Attributes
    ----------
    onset_s : float
        When it starts in the scene, in seconds.
    duration_s : float
        How long it plays in the scene (its source region at its rate), in seconds.
    gain_db : float
        Its own gain relative to the object's level (the jitter), in dB.
    source_s : float
        Where in the source it starts, in seconds.
    source_end_s : float
        Where in the source it ends (the region's natural tail included), in seconds.
    rate : float
        Playback rate: > 1 is faster and higher (pitch and speed change together).
    """

    onset_s: float
    duration_s: float
    gain_db: float
    source_s: float
    source_end_s: float
    rate: float = 1.0

    def to_dict(self) -> dict:
        """Plain floats, unrounded: JSON keeps them exactly, so a saved schedule re-renders bit-identically."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Event:
        try:
            return cls(**{k: float(d[k]) for k in cls.__dataclass_fields__ if k in d})
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"not a valid event: {d!r} ({exc})") from None


@dataclass(frozen=True)
class EventSpec:
    """How an object's events are drawn.

    Attributes
    ----------
    events_per_minute : float > 0
        Mean rate (already scaled by the activity control).
    event_s : float > 0
        Typical length of one event in seconds; sets the minimum gap.
    min_gap_s : float or None
        Least time from one onset to the next; default ``max(1, 1.5 * event_s)`` seconds.
    count_spread : float in [0, 1)
        The number of events is the expected count times U(1 - spread, 1 + spread), rounded, at least 1.
    gain_jitter_db : float >= 0
        Each event's gain is U(-jitter, +jitter) dB.
    rate_jitter_semitones : float >= 0
        Each event plays at a rate of 2**(U(-j, j) / 12) (pitch and speed together; 0 = off).
    """

    events_per_minute: float
    event_s: float
    min_gap_s: float | None = None
    count_spread: float = 0.3
    gain_jitter_db: float = 2.0
    rate_jitter_semitones: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.events_per_minute) and self.events_per_minute > 0):
            raise ParameterError(f"events_per_minute={self.events_per_minute} must be a positive number")
        if not (math.isfinite(self.event_s) and self.event_s > 0):
            raise ParameterError(f"event_s={self.event_s} must be a positive number of seconds")
        if not 0 <= self.count_spread < 1:
            raise ParameterError(f"count_spread={self.count_spread} must lie in [0, 1)")

    @property
    def gap_s(self) -> float:
        return self.min_gap_s if self.min_gap_s is not None else max(1.0, 1.5 * self.event_s)


def expected_count(spec: EventSpec, duration_s: float) -> tuple[int, int]:
    """Least and most events :func:`schedule_events` draws for ``spec`` in ``duration_s`` seconds."""
    mean = spec.events_per_minute * duration_s / 60.0
    room = max(1, int(duration_s // spec.gap_s))
    lo = max(1, round(mean * (1 - spec.count_spread)))
    hi = max(1, round(mean * (1 + spec.count_spread)))
    return min(lo, room), min(hi, room)


def schedule_events(
    spec: EventSpec,
    regions: Sequence[Region],
    *,
    duration_s: float,
    rng: np.random.Generator,
) -> list[Event]:
    """Draw the events of one object.

    Parameters
    ----------
    spec : EventSpec
    regions : sequence of Region
        The parts of the source that each hold one event (non-empty).  Repeats
        take other regions first (shuffled, none twice in a row while there are two).
    duration_s : float > 0
        Scene length in seconds.
    rng : np.random.Generator
        Every draw comes from it: the same generator state gives the same schedule.

    Returns
    -------
    list of Event
        Sorted by onset; onsets at least ``spec.gap_s`` apart; every event ends
        inside the scene (one that would cross the end is moved earlier, or, when
        it is longer than the room left, cut with a fade by the arrangement).
    """
    if not regions:
        raise ParameterError("an event needs at least one region of its source")
    lo, hi = expected_count(spec, duration_s)
    mean = spec.events_per_minute * duration_s / 60.0
    count = int(np.clip(round(mean * rng.uniform(1 - spec.count_spread, 1 + spec.count_spread)), lo, hi))
    order = _region_order(len(regions), count, rng)
    rates = 2.0 ** (rng.uniform(-1, 1, count) * spec.rate_jitter_semitones / 12.0)
    gains = rng.uniform(-1, 1, count) * spec.gain_jitter_db
    lengths = np.array([regions[k].duration_s for k in order]) / rates
    # Free time = the scene minus the minimum gaps minus the last event's length; split it by gamma shares.
    last = min(float(lengths[-1]), duration_s * 0.5)
    free = max(0.0, duration_s - _END_MARGIN_S - last - spec.gap_s * (count - 1))
    shares = rng.gamma(_GAP_SHAPE, 1.0, count + 1)
    shares = free * shares / shares.sum()
    onsets = np.cumsum(shares[:count]) + spec.gap_s * np.arange(count)
    events = []
    for j, k in enumerate(order):
        region = regions[k]
        length = float(lengths[j])
        onset = float(onsets[j])
        if onset + length > duration_s - _END_MARGIN_S:  # would cross the end: move earlier if the gap allows
            earliest = events[-1].onset_s + spec.gap_s if events else 0.0
            onset = max(earliest, duration_s - _END_MARGIN_S - length)
        events.append(Event(onset_s=onset, duration_s=min(length, duration_s - onset), gain_db=float(gains[j]),
                            source_s=region.start_s, source_end_s=region.end_s, rate=float(rates[j])))
    return events


def _region_order(n_regions: int, count: int, rng: np.random.Generator) -> list[int]:
    """Which region each event uses: shuffled rounds, never the same twice in a row when there are two or more."""
    out: list[int] = []
    while len(out) < count:
        perm = list(rng.permutation(n_regions))
        if out and n_regions > 1 and perm[0] == out[-1]:
            perm[0], perm[-1] = perm[-1], perm[0]
        out += perm
    return [int(k) for k in out[:count]]
