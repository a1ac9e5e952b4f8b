"""Choosing sounds: score each term's candidates, reject the wrong ones, give every object a distinct one.

The rule (kept from the project's seed, made stricter):

* for each distinct search term, ``n_candidates`` (default 10) are preloaded;
* every candidate gets a relevance score and a reason from
  :mod:`imgext.sounds.relevance` (name, tags and description against the
  object's label and action phrase, taxonomy, role fit, duration, rating);
  off-topic, weak and far-below-the-best candidates are *rejected* with the
  reason and never chosen;
* objects sharing a term get distinct candidates, picked at random (seeded)
  among the accepted ones within 0.12 of the best (more in rank order when
  more objects share the term); a sound already used in the scene
  is never used again, and two candidates whose LAION-CLAP vectors have a
  cosine above 0.95 count as the same sound;
* when a term has no acceptable candidate or runs out, the object gets no
  sound and :attr:`Assignment.reason` says which and why;
* :func:`reroll` gives one object the next unused accepted candidate in rank
  order without touching the others; :func:`more_like_this` the best unused
  sound like its current one (Freesound's similarity search, same filters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imgext.budget import Budget
from imgext.errors import CancelledError, ImgExtError, ParameterError
from imgext.options import DEFAULT_CANDIDATES
from imgext.sounds.base import Candidate, SoundSource
from imgext.sounds.relevance import SHORTLIST_GAP, judge, near_duplicate, score_candidates
from imgext.sounds.sources import search_with_role
from imgext.vision.placement import SceneObject

__all__ = [
    "DEFAULT_CANDIDATES",
    "Assignment",
    "Ranked",
    "choose",
    "choose_sounds",
    "more_like_this",
    "rank_candidates",
    "reroll",
]


@dataclass(frozen=True)
class Ranked:
    """A candidate with its ranking score and the reason, in words.

    Attributes
    ----------
    candidate : Candidate
    score : float
        Ranking score (relevance with the source order as a tie-break).
    relevance : float in [0, 1]
        How well the sound fits the object (:class:`imgext.sounds.relevance.Relevance`).
    reason : str
        ``"title and tags match 'dog barking' 0.66; single event; 2.1 s"``.
    rejected : str or None
        Why the candidate must not be used ("off-topic", "far below the best" ...), None when acceptable.
    """

    candidate: Candidate
    score: float
    relevance: float
    reason: str
    rejected: str | None = None

    def to_dict(self) -> dict:
        return {"candidate": self.candidate.to_dict(), "score": self.score, "relevance": self.relevance,
                "reason": self.reason, "rejected": self.rejected}


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
        All candidates for the term, best first, rejected ones included (for rerolls and the UI).
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

    @property
    def relevance(self) -> float | None:
        """Relevance of the chosen sound in [0, 1], None without one."""
        return self.choice.relevance if self.choice else None


def rank_candidates(
    candidates: Sequence[Candidate],
    query: str,
    *,
    label: str | None = None,
    synonyms: Sequence[str] = (),
    role: str | None = None,
    duration_s: float = 30.0,
) -> list[Ranked]:
    """Score and rank candidates for one object, best first; ties keep the source's order.

    Parameters
    ----------
    candidates : sequence of Candidate
    query : str
        The action phrase / search term ("dog barking").
    label : str, optional
        The object's label ("dog"); defaults to ``query``.
    synonyms : sequence of str
        On-topic words from the label table.
    role : {"event", "bed", "area"}, optional
        The object's role in the scene.
    duration_s : float
        Scene length in seconds.

    Returns
    -------
    list of Ranked
        Accepted candidates first (by relevance), then the rejected ones, each with its reason.
    """
    scores = score_candidates(candidates, label=label or query, phrase=query, synonyms=synonyms, role=role,
                              scene_s=duration_s)
    verdicts = judge(scores, synthetic=[c.synthetic for c in candidates])
    ranked = [
        Ranked(cand, round(rel.score - 1e-6 * order, 6), rel.score,
               rel.reason if verdict is None else f"{rel.reason}; rejected: {verdict}", verdict)
        for order, (cand, rel, verdict) in enumerate(zip(candidates, scores, verdicts))
    ]
    ranked.sort(key=lambda r: (r.rejected is not None, -r.score))
    return ranked


def _used_by(cand: Candidate, used: Sequence[Candidate]) -> Candidate | None:
    """The used sound ``cand`` is (same id, or a CLAP near-duplicate), or None."""
    for u in used:
        if u.id == cand.id:
            return u
    return near_duplicate(cand, used)


def _role_of(obj) -> str | None:
    role = getattr(obj, "role", None)
    return str(getattr(role, "value", role)) if role else None


def choose_sounds(
    objects: Sequence[SceneObject],
    source: SoundSource,
    *,
    n_candidates: int = DEFAULT_CANDIDATES,
    duration_s: float = 30.0,
    rng: int | np.random.Generator | None = 0,
    progress: Callable[[int, int, str], None] | None = None,
    budget: Budget | None = None,
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
    budget : Budget, optional
        Bounds the searches (made current while they run): once it has run
        out, the remaining terms fail at once with the reason.

    Raises
    ------
    CancelledError
        When ``budget`` is cancelled.

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
    used: list[Candidate] = []
    for done, (term, members) in enumerate(terms.items(), start=1):
        first = objects[members[0]]
        role = _role_of(first)
        try:
            if budget is None:
                found = search_with_role(source, term, n=n_candidates, synth_kind=first.synth, role=role)
            else:
                with budget.scope():
                    found = search_with_role(source, term, n=n_candidates, synth_kind=first.synth, role=role)
        except CancelledError:
            raise
        except ImgExtError as exc:
            for i in members:
                out[i] = Assignment(i, term, None, f"search for {term!r} failed: {exc}", error=exc)
            if progress:
                progress(done, len(terms), term)
            continue
        ranked = tuple(rank_candidates(found, term, label=first.label, synonyms=first.synonyms, role=role,
                                       duration_s=duration_s))
        secondary = getattr(source, "secondary", None)
        if found and secondary is not None and not any(r.rejected is None for r in ranked):
            # a fallback source's second choice gets the term when every sound of the first was rejected
            try:
                extra = search_with_role(secondary, term, n=n_candidates, synth_kind=first.synth, role=role)
            except ImgExtError:
                extra = []
            more = rank_candidates(extra, term, label=first.label, synonyms=first.synonyms, role=role,
                                   duration_s=duration_s)
            if any(r.rejected is None for r in more):
                if hasattr(source, "notes"):
                    source.notes.append(f"every {source.primary.name} sound for {term!r} was rejected "
                                        f"(best: {ranked[0].rejected}); using {secondary.name} sounds")
                ranked = tuple(more) + ranked
        on_topic = [r for r in ranked if r.rejected is None]
        available = []
        for r in on_topic:  # distinct sounds only: a near-duplicate of an earlier one is the same sound
            if _used_by(r.candidate, used) is None and _used_by(r.candidate, [a.candidate for a in available]) is None:
                available.append(r)
        top = available[0].relevance if available else 0.0
        close = [r for r in available if r.relevance >= top - SHORTLIST_GAP]
        shortlist = available[: max(len(members), len(close))]
        picks = [shortlist[k] for k in rng.permutation(len(shortlist))[: len(members)]]
        for k, i in enumerate(members):
            if k < len(picks):
                used.append(picks[k].candidate)
                out[i] = Assignment(i, term, picks[k], picks[k].reason, ranked)
            elif not ranked:
                out[i] = Assignment(i, term, None, f"no sound found for {term!r} in {source.describe()}", ranked)
            elif not on_topic:
                best = ranked[0]
                out[i] = Assignment(
                    i, term, None,
                    f"no good sound for {first.label!r} among {len(ranked)} candidates for {term!r}: the best, "
                    f"{best.candidate.name!r}, was rejected ({best.rejected}); edit the search term or try "
                    "another source",
                    ranked,
                )
            else:
                out[i] = Assignment(
                    i,
                    term,
                    None,
                    f"all {len(on_topic)} acceptable candidates for {term!r} are already used in this scene "
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
    others = [a.candidate for k, a in enumerate(assignments) if a.candidate is not None and k != index]
    blocked = set(exclude or ())
    if current.candidate is not None:
        blocked.add(current.candidate.id)
    ranked = [r for r in current.ranked if r.rejected is None]
    start = 0
    if current.choice is not None:
        ids = [r.candidate.id for r in ranked]
        start = ids.index(current.choice.candidate.id) + 1 if current.choice.candidate.id in ids else 0
    order = ranked[start:] + ranked[:start]
    nxt = next((r for r in order if r.candidate.id not in blocked and _used_by(r.candidate, others) is None), None)
    new = list(assignments)
    if nxt is None:
        keep = current.choice if current.choice and current.choice.candidate.id not in set(exclude or ()) else None
        new[index] = replace(
            current,
            choice=keep,
            reason=f"no unused candidate left for {current.query!r} "
            f"({len(ranked)} acceptable of {len(current.ranked)} preloaded, all in use or failed)"
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
    others = [a.candidate for k, a in enumerate(assignments) if k != index and a.candidate is not None]
    same = _used_by(pick.candidate, others)
    if same is not None:
        what = "already used" if same.id == pick.candidate.id else f"a near-duplicate of {same.name!r}, already used"
        raise ParameterError(f"{pick.candidate.name!r} is {what} by another object in this scene")
    new = list(assignments)
    new[index] = replace(current, choice=pick, reason=f"chosen by you; {pick.reason}")
    return new


def more_like_this(
    assignments: Sequence[Assignment],
    index: int,
    source: SoundSource,
    obj: SceneObject,
    *,
    n: int = DEFAULT_CANDIDATES,
    duration_s: float = 30.0,
) -> list[Assignment]:
    """Give object ``index`` the best sound like its current one ("more like this").

    The source's ``similar`` (Freesound: LAION-CLAP neighbours with the same
    role and taxonomy filters as search) supplies up to ``n`` sounds; they are
    scored like every other candidate and merged into the object's ranked list.
    The best acceptable one that no other object uses (nor a near-duplicate of
    it) becomes the choice; the others stay untouched.

    Returns
    -------
    list of Assignment
        A new list; when nothing acceptable and unused is found, the object
        keeps its sound and the reason says why.

    Raises
    ------
    ParameterError
        Index out of range, no current sound, or a source without similarity search.
    """
    if not 0 <= index < len(assignments):
        raise ParameterError(f"object index {index} is out of range (0..{len(assignments) - 1})")
    current = assignments[index]
    if current.candidate is None:
        raise ParameterError("'more like this' needs a current sound; choose or reroll one first")
    if not hasattr(source, "similar"):
        raise ParameterError(f"{source.describe()} cannot find similar sounds")
    role = _role_of(obj)
    found = source.similar(current.candidate, n=n, query=current.query, role=role)
    known = {r.candidate.id: r.candidate for r in current.ranked}
    merged = list(known.values()) + [c for c in found if c.id not in known]
    ranked = tuple(rank_candidates(merged, current.query, label=obj.label, synonyms=obj.synonyms, role=role,
                                   duration_s=duration_s))
    others = [a.candidate for k, a in enumerate(assignments) if k != index and a.candidate is not None]
    similar_ids = {c.id for c in found}
    pick = next((r for r in ranked if r.rejected is None and r.candidate.id in similar_ids
                 and _used_by(r.candidate, others + [current.candidate]) is None), None)
    new = list(assignments)
    if pick is None:
        new[index] = replace(current, ranked=ranked,
                             reason=f"nothing acceptable and unused like {current.candidate.name!r} "
                             f"({len(found)} similar sounds found); kept the current sound")
    else:
        new[index] = replace(current, choice=pick, ranked=ranked,
                             reason=f"like {current.candidate.name!r}; {pick.reason}")
    return new
