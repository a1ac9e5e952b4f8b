"""Ambience: one bed for the whole picture, chosen from what it shows (``data/ambiences.json``).

A street photo gets a street, a table with cups a café, a cow a countryside; a
photo with no soundable object gets "open air", not silence.  The ambience
becomes one more object (``origin="ambience"``, role area, the full frame),
so every source provides it the way it provides objects (the built-in
synthesiser has a kind per entry, a local library matches its file names,
Freesound its query), and it sits ``ambience_db`` under the most important object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from imgext.errors import ParameterError
from imgext.vision.placement import Role, SceneObject

__all__ = ["AMBIENCE_IMPORTANCE", "AUTO", "NONE", "Ambience", "add_ambience", "ambience_names", "ambience_object",
           "ambience_record", "ambiences", "choose_ambience", "is_ambience"]

AUTO = "auto"
NONE = "none"


@dataclass(frozen=True)
class Ambience:
    """One entry of the ambience table.

    Attributes
    ----------
    name : str
    query : str
        Search terms for a long, loopable recording.
    synth : str
        Built-in synthesiser kind.
    labels : tuple of str
        Detected labels that point to it.
    priority : int
        Breaks ties (a boat and a person: the harbour wins over the street).
    """

    name: str
    query: str
    synth: str
    labels: tuple[str, ...]
    priority: int = 0


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, Ambience], str]:
    data = json.loads(resources.files("imgext").joinpath("data/ambiences.json").read_text(encoding="utf-8"))
    table = {name: Ambience(name, e["query"], e["synth"], tuple(e.get("labels", ())), int(e.get("priority", 0)))
             for name, e in data["ambiences"].items()}
    return table, data["fallback"]


def ambiences() -> dict[str, Ambience]:
    """Every ambience by name."""
    return dict(_table()[0])


def ambience_names() -> list[str]:
    """The names ``--ambience`` accepts besides ``auto`` and ``none``."""
    return list(_table()[0])


def choose_ambience(objects: Sequence[SceneObject], choice: str = AUTO) -> tuple[Ambience | None, str]:
    """The ambience for a scene and why.

    Parameters
    ----------
    objects : sequence of SceneObject
        Skipped ones count too (a bench or a dining table is silent but says where we are).
    choice : str
        ``"auto"``, ``"none"`` or a name of :func:`ambience_names`.

    Returns
    -------
    ambience : Ambience or None
        None for ``"none"``.
    reason : str

    Raises
    ------
    ParameterError
        For an unknown name (the message lists the known ones).
    """
    table, fallback = _table()
    key = (choice or AUTO).strip().lower()
    if key == NONE:
        return None, "no ambience (asked for none)"
    if key != AUTO:
        names = {n.lower(): n for n in table}
        if key not in names:
            raise ParameterError(f"unknown ambience {choice!r}; use auto, none or one of: {', '.join(table)}")
        return table[names[key]], "chosen by hand"
    scores: dict[str, float] = {}
    for o in objects:
        if o.origin == "ambience":
            continue
        for name, amb in table.items():
            if o.label in amb.labels:
                scores[name] = scores.get(name, 0.0) + 0.5 + float(o.importance)
    if not scores:
        return table[fallback], "nothing in the picture points to a place" if objects else "no objects in the picture"
    best = max(scores, key=lambda n: (scores[n], table[n].priority))
    because = sorted({o.label for o in objects if o.label in table[best].labels})
    return table[best], f"from {', '.join(because)}"


AMBIENCE_IMPORTANCE = 0.0
"""The ambience is background: the EQ never cuts a foreground object to keep it clear."""


def ambience_object(ambience: Ambience, *, level_db: float, attenuation_db: float, reason: str = "") -> SceneObject:
    """The ambience as a scene object: the full frame, centred, wide, ``level_db`` under the top object.

    Its importance is 0 (background); its own volume offset makes up the
    attenuation that importance 0 brings, so its gain is ``level_db``
    (:func:`~imgext.vision.placement.object_gain_db`) at this attenuation.
    """
    return SceneObject(
        label=f"ambience: {ambience.name}", confidence=1.0, box=(0.0, 0.0, 1.0, 1.0), pan=0.0,
        importance=AMBIENCE_IMPORTANCE, query=ambience.query, synth=ambience.synth,
        synonyms=tuple(ambience.query.lower().split()) + ("ambience",),
        volume_db=float(level_db) + float(attenuation_db) * (1.0 - AMBIENCE_IMPORTANCE), origin="ambience",
        role=Role.AREA.value,
        notes=(f"ambience {ambience.name!r} ({reason})",) if reason else (),
    )


def is_ambience(obj: SceneObject) -> bool:
    """True for the ambience object :func:`add_ambience` appends."""
    return obj.origin == "ambience"


def add_ambience(objects: Sequence[SceneObject], *, choice: str = AUTO, level_db: float = -12.0,
                 attenuation_db: float = 12.0) -> list[SceneObject]:
    """``objects`` with the scene's ambience appended (unless ``choice`` is ``"none"`` or one is already there)."""
    objs = list(objects)
    if any(is_ambience(o) for o in objs):
        return objs
    amb, reason = choose_ambience(objs, choice)
    if amb is None:
        return objs
    return objs + [ambience_object(amb, level_db=level_db, attenuation_db=attenuation_db, reason=reason)]


def ambience_record(objects: Sequence[SceneObject]) -> dict | None:
    """What ``scene.json`` says about the ambience: name, why, level, and whether it is all there is."""
    amb = [o for o in objects if is_ambience(o)]
    if not amb:
        return None
    o = amb[0]
    sounding = [x for x in objects if not x.skipped and not is_ambience(x)]
    reason = o.notes[0] if o.notes else ""
    return {"name": o.label.removeprefix("ambience: "), "query": o.query, "synth": o.synth, "reason": reason,
            "ambience_only": not sounding}
