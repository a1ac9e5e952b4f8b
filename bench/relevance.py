"""Relevance of the chosen sound: precision@1 on a labelled candidate set, against the old tag-only ranking.

``bench/data/relevance_set.json`` holds 23 labels x 12 Freesound-like records
(names, tags, descriptions, Broad Sound Taxonomy category, descriptors), each
marked good or as a decoy (food, toy, music, band, speech, other animals ...);
one label ("elephant") has no good record at all, so the right answer there is
no sound.  For each label the candidates are ranked:

* **old**: the tag-only ranking that selection used before (query words or a
  synonym in tags/name, duration fit, rating; off-topic sounds only as a fallback);
* **new**: :func:`imgext.sounds.selection.rank_candidates` (relevance score + rejection).

Candidate order is shuffled (seeded, ``--orders`` of them) because the file lists good records first
and both rankings keep the source order on ties.  precision@1 = share of labels whose first choice is good (or, for a label with
no good record, that get no sound).  "picked" repeats choose_sounds' seeded
random pick from the shortlist 20 times per label.  Timing: median of scoring
10 candidates x 8 objects (model already loaded), and the one-off model load.

``bench/data/relevance_heldout.json`` (8 labels x 10) was written after the
scorer was tuned on the first set and is reported separately.

Run: ``python bench/relevance.py [--runs 7] [--verbose]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from imgext.sounds.base import Candidate, words_of
from imgext.sounds.freesound import candidate_from_record
from imgext.sounds.relevance import SHORTLIST_GAP, text_model
from imgext.sounds.selection import rank_candidates
from imgext.vision.placement import LabelMap

DATA = Path(__file__).resolve().parent / "data" / "relevance_set.json"
HELDOUT = Path(__file__).resolve().parent / "data" / "relevance_heldout.json"
_STOP = {"the", "and", "with", "of", "a", "an", "on", "in", "sound", "sounds"}


def load_set(path: Path = DATA) -> list[dict]:
    """The labelled set: per label its query, role and candidates (with ``good`` / ``decoy`` by id)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for entry in doc["labels"]:
        cands = [candidate_from_record(r) for r in entry["records"]]
        truth = {f"freesound:{r['id']}": (r["good"], r["decoy"]) for r in entry["records"]}
        out.append({**entry, "candidates": cands, "truth": truth})
    return out


def tag_only_rank(candidates: list[Candidate], query: str, synonyms, duration_s: float = 30.0) -> list[Candidate]:
    """The ranking before relevance scoring (copied from selection.rank_candidates of main@d9e0439)."""
    qwords = [w for w in dict.fromkeys(words_of(query)) if w not in _STOP]
    syn = {w for s in synonyms for w in words_of(s)} - _STOP
    scored = []
    for order, cand in enumerate(candidates):
        vocab = set(cand.tags) | set(words_of(cand.name))
        found = [w for w in qwords if w in vocab]
        syn_found = (syn - set(found)) & vocab
        relevance = min(1.0, (len(found) / len(qwords) if qwords else 0.0) + (0.5 if syn_found else 0.0))
        d = cand.duration_s
        need = min(duration_s, 10.0)
        fit = 0.5 if d is None else (1.0 if d >= duration_s else 0.9 if d >= need else max(0.05, d / need) * 0.9)
        rating = (cand.rating / 5.0) * (cand.num_ratings / (cand.num_ratings + 3.0)) if cand.rating and cand.num_ratings else 0.0
        scored.append((3.0 * relevance + fit + 0.5 * rating - 1e-6 * order, relevance, cand))
    scored.sort(key=lambda t: -t[0])
    on_topic = [c for s, r, c in scored if r > 0]
    return on_topic or [c for _, _, c in scored]


def shuffled(sets: list[dict], seed: int) -> list[dict]:
    """The set with each label's candidates in a seeded random order (the data file lists good ones first)."""
    rng = np.random.default_rng(seed)
    return [{**e, "candidates": [e["candidates"][k] for k in rng.permutation(len(e["candidates"]))]} for e in sets]


def evaluate(sets: list[dict], *, picks: int = 20) -> dict:
    labels = LabelMap.default()
    rows, old_hits, new_hits, new_decoys, old_decoys, pick_good, pick_total = [], 0, 0, 0, 0, 0, 0
    wrong_picks: list[str] = []
    for entry in sets:
        entry_label = labels.lookup(entry["label"])
        synonyms = entry_label.synonyms
        truth = entry["truth"]
        has_good = any(g for g, _ in truth.values())
        old = tag_only_rank(entry["candidates"], entry["query"], synonyms)
        old_top = old[0].id if old else None
        ranked = rank_candidates(entry["candidates"], entry["query"], label=entry["label"], synonyms=synonyms,
                                 role=entry["role"])
        accepted = [r for r in ranked if r.rejected is None]
        new_top = accepted[0].candidate.id if accepted else None

        def ok(cid, truth=truth, has_good=has_good):
            return (cid is None and not has_good) or (cid is not None and truth[cid][0])

        old_hits += ok(old_top)
        new_hits += ok(new_top)
        old_decoys += old_top is not None and not truth[old_top][0]
        new_decoys += new_top is not None and not truth[new_top][0]
        top = accepted[0].relevance if accepted else 0.0
        shortlist = [r for r in accepted if r.relevance >= top - SHORTLIST_GAP]
        rng = np.random.default_rng(0)
        for _ in range(picks):
            pick = shortlist[int(rng.integers(len(shortlist)))].candidate.id if shortlist else None
            pick_good += ok(pick)
            pick_total += 1
            if not ok(pick):
                name = next(c.name for c in entry["candidates"] if c.id == pick) if pick else "no sound"
                wrong_picks.append(f"{entry['label']}: {name}")
        rows.append((entry["label"], ok(old_top), old_top and truth[old_top][1], ok(new_top),
                     new_top and truth[new_top][1], len(accepted),
                     accepted[0].reason if accepted else (ranked[0].rejected if ranked else "no candidates")))
    n = len(sets)
    return {"rows": rows, "n": n, "old_p1": old_hits / n, "new_p1": new_hits / n, "old_decoys": old_decoys,
            "new_decoys": new_decoys, "picked_good": pick_good / max(1, pick_total),
            "wrong_picks": wrong_picks}


def timing(sets: list[dict], runs: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    text_model()
    load_s = time.perf_counter() - t0
    eight = sets[:8]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for e in eight:
            rank_candidates(e["candidates"][:10], e["query"], label=e["label"], role=e["role"])
        times.append(time.perf_counter() - t)
    return load_s, statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--orders", type=int, default=5, help="seeded candidate orders averaged over")
    parser.add_argument("--verbose", action="store_true", help="one line per label (first order)")
    args = parser.parse_args(argv)
    base = load_set()
    load_s, score_s = timing(base, args.runs)
    for path in (DATA, HELDOUT):
        report(load_set(path), path, args)
    print(f"model load (once per process): {load_s:.3f} s; scoring 10 candidates x 8 objects: median {score_s * 1000:.1f} ms "
          f"over {args.runs} runs")
    return 0


def report(base: list[dict], path: Path, args) -> None:
    results = [evaluate(shuffled(base, seed)) for seed in range(args.orders)]
    res = results[0]
    for key in ("old_p1", "new_p1", "picked_good"):
        res[key] = statistics.mean(r[key] for r in results)
    for key in ("old_decoys", "new_decoys"):
        res[key] = sum(r[key] for r in results)
    res["wrong_picks"] = sorted({w for r in results for w in r["wrong_picks"]})
    if args.verbose:
        for label, old_ok, old_kind, new_ok, new_kind, n_acc, reason in res["rows"]:
            print(f"{label:<12} old {'ok ' if old_ok else 'BAD'} {old_kind or '':<7} new {'ok ' if new_ok else 'BAD'} "
                  f"{new_kind or '':<7} accepted {n_acc:2d}  {reason}")
        for w in res["wrong_picks"]:
            print("wrong pick:", w)
    per = len(base[0]["candidates"]) if base else 0
    print(f"{path.name}: {res['n']} labels x {per} candidates, {args.orders} candidate orders")
    print(f"precision@1  tag-only (old): {res['old_p1']:.3f}  decoys chosen: {res['old_decoys']} of {res['n'] * args.orders}")
    print(f"precision@1  relevance (new): {res['new_p1']:.3f}  decoys chosen: {res['new_decoys']} of {res['n'] * args.orders}")
    print(f"seeded random pick from the shortlist, share right: {res['picked_good']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
