"""Choosing sounds: rank each term's candidates, give every object a distinct one.

The rule (kept from the project's seed):

* for each distinct search term, ``n_candidates`` (default 10) are preloaded;
* candidates are ranked so obviously wrong sounds lose (the term or a synonym in
  the tags or name, duration fit, rating), and the reason is recorded;
* objects sharing a term get distinct candidates, picked at random (seeded)
  from the on-topic shortlist; a sound already used in the scene is never used
  again;
* when a term runs out, the object gets no sound and :attr:`Assignment.reason`
  says which and why;
* :func:`reroll` gives one object the next unused candidate in rank order
  without touching the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imgext.errors import ImgExtError, ParameterError
from imgext.sounds.base import Candidate, SoundSource, words_of
from imgext.vision.placement import SceneObject

__all__ = ["Ranked", "Assignment", "rank_candidates", "choose_sounds", "reroll", "choose", "DEFAULT_CANDIDATES"]

DEFAULT_CANDIDATES = 10
"""Candidates preloaded per distinct search term."""

_STOP = {"the", "and", "with", "of", "a", "an", "on", "in", "sound", "sounds"}


@dataclass(frozen=True)
class Ranked:
    """A candidate with its ranking score and the reason, in words."""

    candidate: Candidate
    score: float
    relevance: float
    reason: str

    def to_dict(self) -> dict:
        return {"candidate": self.candidate.to_dict(), "score": self.score, "relevance": self.relevance, "reason": self.reason}


@dataclass(frozen=True)
class Assignment:
    """The sound chosen for one scene object.

    Attributes
    ----------
    object_index : int
        Index into the scene's object list.
    query : str
        The search term used.
    choice : Ranked or None
        ``None`` when the object gets no sound; then ``reason`` says why.
    reason : str
        Why this sound (ranking reason) or why none.
    ranked : tuple of Ranked
        All candidates for the term, best first (for rerolls and the UI).
    error : Exception or None
        The source's error when the search or download failed (key refused,
        rate limit, network), as opposed to simply finding nothing.
    """

    object_index: int
    query: str
    choice: Ranked | None
    reason: str
    ranked: tuple[Ranked, ...] = ()
    error: Exception | None = field(default=None, compare=False, repr=False)

    @property
    def candidate(self) -> Candidate | None:
        return self.choice.candidate if self.choice else None


def _duration_fit(duration_s: float | None, scene_s: float) -> tuple[float, str]:
    if duration_s is None:
        return 0.5, "length unknown"
    if duration_s <= 0:
        return 0.0, "empty"
    need = min(scene_s, 10.0)
    if duration_s >= scene_s:
        return 1.0, f"{duration_s:.1f} s (no loop needed)"
    if duration_s >= need:
        return 0.9, f"{duration_s:.1f} s (loops smoothly)"
    return max(0.05, duration_s / need) * 0.9, f"{duration_s:.1f} s (short; loops often)"


def rank_candidates(
    candidates: Sequence[Candidate],
    query: str,
    *,
    synonyms: Sequence[str] = (),
    duration_s: float = 30.0,
) -> list[Ranked]:
    """Rank candidates for ``query``, best first; ties keep the source's order.

    Score = 3 x relevance + duration fit + 0.5 x rating confidence, where
    relevance is the share of query words found in tags or name (+0.5 when a
    synonym is found, capped at 1).  Relevance 0 marks an off-topic sound.
    """
    qwords = [w for w in dict.fromkeys(words_of(query)) if w not in _STOP]
    syn = {w for s in synonyms for w in words_of(s)} - _STOP
    ranked = []
    for order, cand in enumerate(candidates):
        vocab = set(cand.tags) | set(words_of(cand.name))
        found = [w for w in qwords if w in vocab]
        syn_found = sorted((syn - set(found)) & vocab)
        relevance = min(1.0, (len(found) / len(qwords) if qwords else 0.0) + (0.5 if syn_found else 0.0))
        fit, fit_text = _duration_fit(cand.duration_s, duration_s)
        if cand.rating is not None and cand.num_ratings > 0:
            rating = (cand.rating / 5.0) * (cand.num_ratings / (cand.num_ratings + 3.0))
            rating_text = f"rated {cand.rating:.1f} by {cand.num_ratings}"
        else:
            rating, rating_text = 0.0, "not rated"
        score = 3.0 * relevance + fit + 0.5 * rating - 1e-6 * order
        if cand.synthetic:
            match_text = "synthesised for this term"
        elif found or syn_found:
            match_text = "matches " + ", ".join(repr(w) for w in found + syn_found)
        else:
            match_text = "off-topic: no search word in its tags or name"
        ranked.append(Ranked(cand, round(score, 6), round(relevance, 4), f"{match_text}; {fit_text}; {rating_text}"))
    ranked.sort(key=lambda r: -r.score)
    return ranked


def choose_sounds(
    objects: Sequence[SceneObject],
    source: SoundSource,
    *,
    n_candidates: int = DEFAULT_CANDIDATES,
    duration_s: float = 30.0,
    rng: int | np.random.Generator | None = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Assignment]:
    """Search each distinct term once and give every object a distinct sound.

    Parameters
    ----------
    objects : sequence of SceneObject
        Skipped objects get an assignment with no sound.
    source : SoundSource
    n_candidates : int > 0
        Candidates preloaded per distinct term.
    duration_s : float
        Scene length in seconds (for the duration fit).
    rng : int, Generator or None
        Seed for the random pick among on-topic candidates.
    progress : callable(done, total, term), optional
        Called after each term's search.

    Returns
    -------
    list of Assignment
        One per object, in object order.
    """
    if n_candidates <= 0:
        raise ParameterError(f"n_candidates={n_candidates} must be positive")
    rng = np.random.default_rng(rng)
    terms: dict[str, list[int]] = {}
    for i, obj in enumerate(objects):
        if not obj.skipped:
            terms.setdefault(obj.query, []).append(i)
    out: dict[int, Assignment] = {}
    used: set[str] = set()
    for done, (term, members) in enumerate(terms.items(), start=1):
        first = objects[members[0]]
        try:
            found = source.search(term, n=n_candidates, synth_kind=first.synth)
        except ImgExtError as exc:
            for i in members:
                out[i] = Assignment(i, term, None, f"search for {term!r} failed: {exc}", error=exc)
            if progress:
                progress(done, len(terms), term)
            continue
        ranked = tuple(rank_candidates(found, term, synonyms=first.synonyms, duration_s=duration_s))
        on_topic = [r for r in ranked if r.relevance > 0] or list(ranked)
        available = [r for r in on_topic if r.candidate.id not in used]
        shortlist = available[: max(len(members), math.ceil(len(on_topic) / 2))]
        picks = [shortlist[k] for k in rng.permutation(len(shortlist))[: len(members)]]
        for k, i in enumerate(members):
            if k < len(picks):
                used.add(picks[k].candidate.id)
                out[i] = Assignment(i, term, picks[k], picks[k].reason, ranked)
            elif not ranked:
                out[i] = Assignment(i, term, None, f"no sound found for {term!r} in {source.describe()}", ranked)
            else:
                out[i] = Assignment(
                    i,
                    term,
                    None,
                    f"all {len(on_topic)} candidates for {term!r} are already used in this scene "
                    f"({len(members)} objects share the term); preload more candidates or edit the search term",
                    ranked,
                )
        if progress:
            progress(done, len(terms), term)
    for i, obj in enumerate(objects):
        if obj.skipped:
            out[i] = Assignment(i, obj.query, None, obj.notes[0] if obj.notes else f"{obj.label!r} was skipped")
    return [out[i] for i in range(len(objects))]


def reroll(assignments: Sequence[Assignment], index: int, *, exclude: set[str] | None = None) -> list[Assignment]:
    """Give object ``index`` the next unused candidate (rank order); the others are untouched.

    Parameters
    ----------
    exclude : set of str, optional
        Further candidate ids to avoid (e.g. ones that failed to decode).

    Returns
    -------
    list of Assignment
        A new list; the rerolled object gets no sound (with the reason) when its
        term's candidates are exhausted.
    """
    if not 0 <= index < len(assignments):
        raise ParameterError(f"object index {index} is out of range (0..{len(assignments) - 1})")
    current = assignments[index]
    used = {a.candidate.id for a in assignments if a.candidate is not None}
    used |= set(exclude or ())
    ranked = list(current.ranked)
    start = 0
    if current.choice is not None:
        ids = [r.candidate.id for r in ranked]
        start = ids.index(current.choice.candidate.id) + 1 if current.choice.candidate.id in ids else 0
    order = ranked[start:] + ranked[:start]
    nxt = next((r for r in order if r.candidate.id not in used), None)
    new = list(assignments)
    if nxt is None:
        keep = current.choice if current.choice and current.choice.candidate.id not in set(exclude or ()) else None
        new[index] = replace(
            current,
            choice=keep,
            reason=f"no unused candidate left for {current.query!r} ({len(ranked)} preloaded, all in use or failed)"
            + ("; kept the current sound" if keep else ""),
        )
    else:
        new[index] = replace(current, choice=nxt, reason=nxt.reason)
    return new


def choose(assignments: Sequence[Assignment], index: int, candidate_id: str) -> list[Assignment]:
    """Give object ``index`` a specific candidate of its ranked list (the user's pick).

    Raises
    ------
    ParameterError
        If the candidate is not among the object's candidates or another object already uses it.
    """
    if not 0 <= index < len(assignments):
        raise ParameterError(f"object index {index} is out of range (0..{len(assignments) - 1})")
    current = assignments[index]
    pick = next((r for r in current.ranked if r.candidate.id == candidate_id), None)
    if pick is None:
        raise ParameterError(f"{candidate_id!r} is not a candidate for {current.query!r}")
    for k, a in enumerate(assignments):
        if k != index and a.candidate is not None and a.candidate.id == candidate_id:
            raise ParameterError(f"{pick.candidate.name!r} is already used by another object in this scene")
    new = list(assignments)
    new[index] = replace(current, choice=pick, reason=f"chosen by you; {pick.reason}")
    return new
