"""Is this candidate the right sound for the object?  A relevance score with its reason.

Every candidate (Freesound, local library, built-in) is scored against the
object's label and its action phrase (``"dog"`` -> ``"dog barking"``, the
label table's ``query``) from its name, tags and description:

* **text similarity**: cosine between WordLlama embeddings (an offline MIT
  model whose 16 MB weights ship inside the ``wordllama`` wheel) of "name +
  tags" against the phrase (weight 0.4) and the label (0.1), and of the
  description against the phrase (0.15);
* **keywords** (0.35 together): the label word (0.3) or one of its synonyms
  (0.2) as a whole word in the name or tags (a description mention counts
  half), and the share of the phrase's words found there (0.5);
* **what kind of sound it is**: Freesound's Broad Sound Taxonomy ``category`` /
  ``subcategory`` and tell-tale words mark music, instrument samples, solo
  speech, toys, food, cartoons and imitations; each costs 0.3 unless the object
  asks for it (a query with "music", "toy", "speech" ...), and a label word
  used in another sense ("hot dog", "cowbell", "paper airplane") costs 0.4;
* **role fit** (0.08): an event wants a single event of 0.2-10 s, a bed or
  area a loopable or long recording; **rating** (0.04); a reverberant
  recording (``reverbness``) costs 0.03, since our own room is added later.

:func:`judge` then rejects, with the reason, candidates that are off-topic,
weak (score below :data:`MIN_SCORE`) or far below the object's best
(:data:`MAX_GAP_BELOW_BEST`): a label whose candidates are all rejected gets
no sound rather than a wrong one.  Scores are relative to the object's own
candidates except for that floor.

The model is loaded once per process, lazily, from the package's own folder and
never downloaded: its tokenizer and weights are read directly and embedded as
``WordLlamaInference.embed`` does (:class:`_WordLlamaInference`; importing the
package itself costs more start-up than the model).  Without the package,
scoring falls back to keywords alone and says so in the reason.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imgext.sounds.base import Candidate, words_of
from imgext.sounds.filters import ASKS_FOR

__all__ = [
    "DUPLICATE_COSINE",
    "MAX_GAP_BELOW_BEST",
    "MIN_SCORE",
    "SHORTLIST_GAP",
    "Relevance",
    "clap_vector",
    "judge",
    "model_status",
    "near_duplicate",
    "score_candidates",
    "text_model",
]

MIN_SCORE = 0.35
"""Below this relevance a candidate is rejected even when it is the best one (0..1)."""

MAX_GAP_BELOW_BEST = 0.35
"""Candidates this far below the object's best are rejected."""

SHORTLIST_GAP = 0.12
"""Objects pick at random (seeded) among accepted candidates this close to the best; others only by reroll."""

DUPLICATE_COSINE = 0.95
"""Two candidates whose LAION-CLAP vectors have a higher cosine are the same sound for the no-reuse rule."""

_STOP = {"the", "and", "with", "of", "a", "an", "on", "in", "at", "to", "sound", "sounds", "s"}

def _set(words: str) -> frozenset:
    return frozenset(words.split())


# kind of sound -> (tell-tale words, words with which an object asks for that kind)
_KINDS: dict[str, tuple[frozenset, frozenset]] = {
    "music": (
        _set("music musical song songs melody melodies guitar piano synth chord chords bpm riff cover karaoke "
                  "jazz band album lyrics instrumental ballad jingle tune orchestral orchestra saxophone sax ukulele "
                  "harmonica choir singing concert fanfare brass violin bebop disco rock punk beat groove tribute "
                  "rhyme lullaby"),
        ASKS_FOR["music"],
    ),
    "instrument sample": (
        _set("note notes sample multisample preset patch"),
        ASKS_FOR["instrument sample"],
    ),
    "solo speech": (
        _set("speech monologue narration narrator voiceover voice-over reading poem lecture podcast vlog "
                  "announcement announcer presenter tutorial interview story talk"),
        ASKS_FOR["solo speech"],
    ),
    "toy": (
        _set("toy toys plush squeaky squeak-toy windup wind-up stuffed"),
        _set("toy toys teddy plush"),
    ),
    "food": (
        _set("hotdog sizzle sizzling bbq barbecue frying fry food cooking"),
        _set("food cooking frying sizzle sizzling kitchen grill oven microwave toaster"),
    ),
    "cartoon or imitation": (
        _set("cartoon cartoonish game slapstick comedy imitation imitating imitates mimic mimicking vocal "
                  "beatbox character chiptune"),
        _set("cartoon game comedy"),
    ),
}

# Broad Sound Taxonomy names (category, subcategory) -> kind; "Speech / Conversation / Crowd" is fine for people
_TAXONOMY_KINDS = {
    ("Music", None): "music",
    ("Instrument samples", None): "instrument sample",
    ("Speech", "Solo speech"): "solo speech",
}

# a label word used in another sense
_OTHER_SENSES = tuple(
    tuple(s.split())
    for s in (
        "hot dog", "corn dog", "dog days", "dog tag", "three dog night", "cat walk", "cat power", "cow bell",
        "rocking horse", "pommel horse", "crazy horse", "dark horse", "black sheep", "counting sheep",
        "paper airplane", "airplane mode", "jefferson airplane", "rock the boat", "love boat", "crazy train",
        "magic bus", "kitchen sink", "toilet paper", "exercise bike", "speaking clock", "dial tone", "phone line",
        "tv remote", "elephant seal", "elephant in the room", "teddy bear", "gummy bear", "bear market",
        "sea lion", "mickey mouse", "modest mouse", "cartoon mouse", "car sized", "umbrella academy",
    )
)

_ROLE_WORDS = {"event": "event", "bed": "bed", "area": "area", "ambience": "bed", "background": "bed"}


@dataclass(frozen=True)
class Relevance:
    """How well one candidate fits one object.

    Attributes
    ----------
    score : float in [0, 1]
        Overall relevance.
    text_similarity : float in [0, 1]
        Embedding cosine of name + tags against the action phrase (keyword
        overlap when the model is unavailable).
    keyword : float in [0, 1]
        Label/synonym hit and phrase-word share.
    role_fit : float in [-1, 1]
    kinds : tuple of str
        Unwanted kinds found ("music", "toy", "other sense of 'dog'" ...).
    reason : str
        Short text, e.g. ``"title and tags match 'dog barking' 0.66; single event; 2.1 s"``.
    on_topic : bool
        The label, a synonym or a close text match was found at all.
    """

    score: float
    text_similarity: float
    keyword: float
    role_fit: float
    kinds: tuple[str, ...]
    reason: str
    on_topic: bool


# --------------------------------------------------------------------------- the text model

_MODEL_LOCK = threading.Lock()
_MODEL: list = []  # [model or None, status text]


class _WordLlamaInference:
    """WordLlama's dense inference (``WordLlamaInference.embed``), without importing ``wordllama``.

    Importing the package costs ~0.6 CPU-s and ~30 MB at start-up (pydantic, requests, its
    algorithms) for a table look-up and an average; this reads the same two files of the wheel
    (tokenizer JSON and ``safetensors`` weights) and computes the same float32 pooled
    embeddings, bit for bit (``tests/test_relevance.py`` compares it with the package).  The
    weights stay float16 (16 MB instead of 32 MB); only the rows looked up are widened, which
    is exact.

    Parameters
    ----------
    folder : Path
        The installed ``wordllama`` package folder.
    config : str
        Model name (``"l2_supercat"``: the package's default, 256 dimensions).
    """

    BATCH = 64  # WordLlamaInference.embed's default batch_size: padding is per batch

    def __init__(self, folder, config: str = "l2_supercat", dim: int = 256) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizers" / f"{config}_tokenizer_config.json"))
        self.tokenizer.enable_padding()
        self.tokenizer.no_truncation()
        with safe_open(str(folder / "weights" / f"{config}_{dim}.safetensors"), framework="np", device="cpu") as f:
            self.embedding = np.ascontiguousarray(f.get_tensor("embedding.weight"))  # (vocab, dim) float16

    def embed(self, texts: list[str]) -> np.ndarray:
        """Average-pooled token embeddings, ``(len(texts), dim)`` float32 (not normalised)."""
        out = np.empty((len(texts), self.embedding.shape[1]), dtype=np.float32)
        for i in range(0, len(texts), self.BATCH):
            encoded = self.tokenizer.encode_batch(texts[i : i + self.BATCH], is_pretokenized=False,
                                                  add_special_tokens=False)
            ids = np.array([e.ids for e in encoded], dtype=np.int32)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
            np.clip(ids, 0, self.embedding.shape[0] - 1, out=ids)
            x = self.embedding[ids].astype(np.float32)  # float16 -> float32 is exact
            mask_sum = np.maximum(mask.sum(axis=1, keepdims=True), 1.0).astype(np.float32)
            out[i : i + len(encoded)] = np.sum(x * mask[..., np.newaxis], axis=1, dtype=np.float32) / mask_sum
        return out


def text_model():
    """The WordLlama model, loaded once per process (offline); None when unavailable.

    Returns
    -------
    object with ``embed(texts) -> (n, 256) float32`` or None
    """
    if _MODEL:
        return _MODEL[0]
    with _MODEL_LOCK:
        if not _MODEL:
            try:
                import importlib.util
                from pathlib import Path

                spec = importlib.util.find_spec("wordllama")  # finds the package without importing it
                if spec is None or not spec.submodule_search_locations:
                    raise ImportError("wordllama is not installed")
                folder = Path(next(iter(spec.submodule_search_locations)))
                model = _WordLlamaInference(folder)
                _MODEL[:] = [model, f"WordLlama {_installed_version(folder)}"]
            except Exception as exc:  # noqa: BLE001 - no package or weights: keyword scoring still works
                _MODEL[:] = [None, f"text model unavailable ({type(exc).__name__}); keyword scoring only"]
    return _MODEL[0]


def _installed_version(folder) -> str:
    """The installed version of the package in ``folder``, from its ``.dist-info`` folder's name.

    What ``importlib.metadata.version`` answers, without importing ``importlib.metadata``
    (``email``, ``zipfile``, ``socket`` ...: ~0.05 CPU-s of a cold start); asked of it only
    when no such folder sits beside the package.
    """
    found = sorted(folder.parent.glob(f"{folder.name}-*.dist-info"))
    if len(found) == 1:
        return found[0].name[len(folder.name) + 1: -len(".dist-info")]
    import importlib.metadata

    return importlib.metadata.version(folder.name)


def model_status() -> str:
    """Which text model scores candidates (loads it if needed)."""
    text_model()
    return _MODEL[1]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _embed(texts: list[str]) -> np.ndarray | None:
    model = text_model()
    if model is None or not texts:
        return None
    vectors = np.asarray(model.embed(texts), dtype=np.float64)
    return _unit_rows(vectors.reshape(len(texts), -1))


# --------------------------------------------------------------------------- words

def _stem(word: str) -> str:
    """Plural -> singular only ("dogs" -> "dog", "glasses" stays): "training" must not become "train"."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in words_of(text.replace("-", " "))]


def _tag_words(tags: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        out += _words(t)
    return out


def _contains(seq: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(seq[i : i + n]) == phrase for i in range(len(seq) - n + 1))


def _senses_for(label_words: set[str], asked: list[str]) -> list[tuple[str, ...]]:
    """The phrases of :data:`_OTHER_SENSES` (stemmed) that could mislead for this label (not asked for)."""
    out = []
    for phrase in _OTHER_SENSES:
        stems = tuple(_stem(w) for w in phrase)
        if label_words & set(stems) and not _contains(asked, stems):
            out.append(stems)
    return out


def _other_senses(senses: list[tuple[str, ...]], texts: list[list[str]]) -> list[str]:
    """Phrases like "hot dog" that use a label word in another sense, found in ``texts``."""
    return [" ".join(stems) for stems in senses if any(_contains(t, stems) for t in texts)]


# --------------------------------------------------------------------------- role and duration

def _normal_role(role: str | None) -> str | None:
    return _ROLE_WORDS.get(str(role).lower()) if role else None


def _role_fit(cand: Candidate, role: str | None, scene_s: float) -> tuple[float, list[str]]:
    """Fit in [-1, 1] and words for the reason ("single event", "loopable", "2.1 s")."""
    notes: list[str] = []
    single = cand.extra.get("single_event") if cand.extra else None
    loop = cand.extra.get("loopable") if cand.extra else None
    d = cand.duration_s
    fit = 0.0
    if single is True:
        notes.append("single event")
    if loop is True:
        notes.append("loopable")
    if role == "event":
        fit += 0.5 if single is True else (-0.2 if single is False else 0.0)
        if d is not None:
            fit += 0.5 if 0.2 <= d <= 10.0 else (-0.5 if d > 30.0 else 0.0)
    elif role in ("bed", "area"):
        fit += 0.5 if loop is True else 0.0
        if d is not None:
            fit += 0.5 if d >= min(10.0, scene_s) else (-0.7 if d < 3.0 else 0.0)
    if d is not None:
        notes.append(f"{d:.1f} s")
    return max(-1.0, min(1.0, fit)), notes


# --------------------------------------------------------------------------- scoring

def score_candidates(
    candidates: Sequence[Candidate],
    *,
    label: str,
    phrase: str,
    synonyms: Sequence[str] = (),
    role: str | None = None,
    scene_s: float = 30.0,
) -> list[Relevance]:
    """Relevance of each candidate for one object, in the candidates' order.

    Parameters
    ----------
    candidates : sequence of Candidate
    label : str
        The object's label ("dog").
    phrase : str
        Its action phrase / search term ("dog barking").
    synonyms : sequence of str
        Words that mark a sound as on-topic ("bark", "woof").
    role : {"event", "bed", "area"} or None
        The object's role in the scene; None = no role preference.
    scene_s : float
        Scene length in seconds.

    Returns
    -------
    list of Relevance
    """
    if not candidates:
        return []
    role = _normal_role(role)
    label_words = set(_words(label)) - _STOP
    phrase_words = [w for w in dict.fromkeys(_words(phrase)) if w not in _STOP]
    syn_words = {w for s in synonyms for w in _words(s)} - _STOP
    hit_words = label_words | syn_words
    asked = _words(" ".join([label, phrase, *synonyms]))
    asked_set = set(asked)
    misleading = _senses_for(label_words, asked)

    title_texts = [f"{c.name}. {' '.join(c.tags[:20])}" for c in candidates]
    desc_texts = [(c.description or c.name)[:300] for c in candidates]
    emb = _embed([phrase, label] + title_texts + desc_texts)
    n = len(candidates)
    if emb is not None:
        sims = np.clip(emb[2:] @ emb[:2].T, 0.0, 1.0)  # (2 n, 2): against the phrase and the label
        title_sim, label_sim, desc_sim = sims[:n, 0], sims[:n, 1], sims[n:, 0]
    else:
        title_sim = label_sim = desc_sim = None

    out = []
    for k, cand in enumerate(candidates):
        name_w, tag_w, desc_w = _words(cand.name), _tag_words(cand.tags), _words(cand.description or "")
        vocab = set(name_w) | set(tag_w)
        senses = _other_senses(misleading, [name_w] + [_words(t) for t in cand.tags]) if misleading else []
        if senses:
            label_hit = syn_hit = 0.0
        else:
            label_hit = 1.0 if vocab & label_words else (0.5 if set(desc_w) & label_words else 0.0)
            syn_hit = 1.0 if vocab & hit_words else (0.5 if set(desc_w) & hit_words else 0.0)
        share = (sum(w in vocab for w in phrase_words) / len(phrase_words)) if phrase_words else 0.0
        keyword = 0.3 * label_hit + 0.2 * syn_hit + 0.5 * share
        if title_sim is not None:
            t_sim, l_sim, d_sim = float(title_sim[k]), float(label_sim[k]), float(desc_sim[k])
        else:
            t_sim, l_sim, d_sim = keyword, label_hit, 0.5 * syn_hit
        base = 0.4 * t_sim + 0.1 * l_sim + 0.15 * d_sim + 0.35 * keyword

        kinds = []
        category = cand.extra.get("category") if cand.extra else None
        subcategory = cand.extra.get("subcategory") if cand.extra else None
        for kind, (tells, asks) in _KINDS.items():
            if asks & asked_set:
                continue
            by_taxonomy = _TAXONOMY_KINDS.get((category, None)) == kind or _TAXONOMY_KINDS.get((category, subcategory)) == kind
            if by_taxonomy or (vocab & tells):
                kinds.append(kind)
        kinds += [f"'{s}' is another sense of '{label}'" for s in senses]
        penalty = min(0.6, 0.3 * sum(not k.startswith("'") for k in kinds) + 0.4 * len(senses))

        fit, notes = _role_fit(cand, role, scene_s)
        if cand.rating is not None and cand.num_ratings > 0:
            rating = (cand.rating / 5.0) * (cand.num_ratings / (cand.num_ratings + 3.0))
        else:
            rating = 0.0
        reverb = cand.extra.get("reverbness") if cand.extra else None
        score = base - penalty + 0.08 * fit + 0.04 * rating - (0.03 if reverb is True else 0.0)
        score = float(min(1.0, max(0.0, score)))
        on_topic = cand.synthetic or syn_hit > 0 or t_sim >= 0.5 or (share >= 0.5 and not senses)

        what = "title and tags match" if emb is not None else "keywords match"
        parts = [f"{what} '{phrase}' {t_sim:.2f}"]
        if cand.synthetic:
            parts = [f"synthesised for '{phrase}'"]
        parts += notes
        if reverb is True:
            parts.append("reverberant")
        if kinds:
            parts.append("unwanted: " + ", ".join(kinds))
        if math.isfinite(score):
            out.append(Relevance(round(score, 4), round(t_sim, 4), round(keyword, 4), round(fit, 3),
                                 tuple(kinds), "; ".join(parts), bool(on_topic)))
    return out


def judge(
    relevances: Sequence[Relevance],
    *,
    min_score: float = MIN_SCORE,
    max_gap: float = MAX_GAP_BELOW_BEST,
    synthetic: Sequence[bool] | None = None,
) -> list[str | None]:
    """Why each candidate is rejected, or None when it may be used.

    Rejected: off-topic (no label, synonym or close text match), of an unwanted
    kind (music, instrument sample, solo speech, toy, food, cartoon or
    imitation, a label word in another sense; unless the object asks for it),
    weak (below ``min_score``) or far below the best candidate (more than ``max_gap``).
    Synthetic sounds are made for the term and never rejected.
    """
    best = max((r.score for r in relevances), default=0.0)
    out: list[str | None] = []
    for k, r in enumerate(relevances):
        if synthetic is not None and synthetic[k]:
            out.append(None)
        elif not r.on_topic:
            out.append(f"off-topic (relevance {r.score:.2f})")
        elif r.kinds:
            out.append(f"not what the object asks for: {', '.join(r.kinds)}")
        elif r.score < min_score:
            why = f"; {', '.join(r.kinds)}" if r.kinds else ""
            out.append(f"weak match (relevance {r.score:.2f} < {min_score:.2f}{why})")
        elif r.score < best - max_gap:
            out.append(f"far below the best (relevance {r.score:.2f} vs {best:.2f})")
        else:
            out.append(None)
    return out


# --------------------------------------------------------------------------- near-duplicates

def clap_vector(candidate: Candidate) -> np.ndarray | None:
    """The candidate's unit LAION-CLAP vector (Freesound ``sim_laion_clap``), or None."""
    v = candidate.extra.get("sim_laion_clap") if candidate.extra else None
    if v is None:
        return None
    try:
        arr = np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    norm = float(np.linalg.norm(arr))
    if arr.size == 0 or not math.isfinite(norm) or norm == 0:
        return None
    return arr / norm


def near_duplicate(candidate: Candidate, others: Sequence[Candidate], *, threshold: float = DUPLICATE_COSINE) -> Candidate | None:
    """The first of ``others`` that is the same sound as ``candidate`` (CLAP cosine above ``threshold``)."""
    v = clap_vector(candidate)
    if v is None:
        return None
    for other in others:
        if other.id == candidate.id:
            continue
        w = clap_vector(other)
        if w is not None and w.shape == v.shape and float(v @ w) > threshold:
            return other
    return None

