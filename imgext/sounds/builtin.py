"""The built-in source: procedural sounds for every label category (:mod:`imgext.sounds.synth`), offline."""

from __future__ import annotations

import functools
from pathlib import Path

from imgext.audio.io import DEFAULT_SAMPLE_RATE, encode_wav
from imgext.sounds import synth
from imgext.sounds.base import SYNTHETIC_LICENSE, Candidate, words_of
from imgext.sounds.cache import DiskCache
from imgext.sounds.memo import MemoryCache, content_key
from imgext.vision.placement import LabelMap

SYNTH_CACHE = MemoryCache(96 * 2**20)
"""Synthesised sounds (16-bit WAV bytes) by kind, seed, length and rate, shared by every session of the process.

Synthesis is deterministic, so a sound made once is never made again while it is
cached: 96 MB hold about 36 sounds of 30 s.  With a disk cache (``IMGEXT_CACHE_DIR``,
:func:`~imgext.sounds.sources.open_source`) they outlive the process too, keyed by a
digest of the synthesiser's code, so the next ``imgext render`` does not make them again.
"""


class BuiltinSource:
    """Offline procedural sounds, one family per label category, ten variants each.

    Parameters
    ----------
    labels : LabelMap, optional
        Used to map free search terms to a synthesiser kind.
    """

    name = "builtin"
    @staticmethod
    def max_concurrency(duration_s: float) -> int:
        """Sounds synthesised at once by :func:`~imgext.composition.tracks.fetch_tracks`.

        The work is CPU-bound, so more threads than cores only add memory; a
        synthesiser's working set grows with the scene (up to ~2 GB for 600 s),
        so long scenes are made one sound at a time.
        """
        return 2 if duration_s <= 120.0 else 1

    def __init__(self, labels: LabelMap | None = None, *, cache: DiskCache | None = None) -> None:
        self._labels = labels or LabelMap.default()
        self._cache = cache if cache is not None and cache.enabled else None

    def describe(self) -> str:
        return "built-in synthetic sounds (offline; every sound is labelled synthetic)"

    def kind_for(self, query: str, synth_kind: str | None = None) -> str:
        """The synthesiser kind that best fits ``query`` (word overlap with the label table)."""
        if synth_kind in synth.SYNTH_KINDS and synth_kind.startswith("amb_"):
            return synth_kind  # an ambience asks for its own kind: a place, not an object in it
        words = set(words_of(query))
        best, best_score = None, 0
        for label, entry in self._labels.items():
            vocab = set(words_of(label)) | set(words_of(entry.query)) | set(entry.synonyms)
            score = len(words & vocab)
            if score > best_score and entry.synth in synth.SYNTH_KINDS:
                best, best_score = entry.synth, score
        if synth_kind in synth.SYNTH_KINDS and (best is None or best_score <= 1):
            return synth_kind
        if best is not None:
            return best
        for kind in synth.SYNTH_KINDS:  # a term naming a kind directly ("wind", "rain")
            if set(kind.split("_")) & words:
                return kind
        return synth_kind if synth_kind in synth.SYNTH_KINDS else "ambience"

    def search(self, query: str, *, n: int = 10, synth_kind: str | None = None, role: str | None = None) -> list[Candidate]:
        kind = self.kind_for(query, synth_kind)
        tags = tuple(dict.fromkeys(words_of(query) + kind.split("_")))
        text = synth.describe(kind)
        return [
            Candidate(
                id=f"builtin:{kind}:{seed}",
                name=f"{kind.replace('_', ' ')} #{seed + 1} (synthetic)",
                source="builtin",
                author="Image Extender built-in synthesiser",
                license=SYNTHETIC_LICENSE,
                tags=tags,
                description=text,
                synthetic=True,
                file_ext="wav",
                extra={"kind": kind, "seed": seed},
            )
            for seed in range(max(0, int(n)))
        ]

    def fetch(self, candidate: Candidate, *, duration_s: float, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
        kind, seed = candidate.extra.get("kind"), candidate.extra.get("seed")
        if kind is None or seed is None:
            _, kind, seed_text = candidate.id.split(":")
            seed = int(seed_text)
        key = (str(kind), int(seed), float(duration_s), int(sample_rate))

        def make() -> bytes:
            disk_key = f"builtin:{synth_version()}:{kind}:{int(seed)}:{float(duration_s)!r}:{int(sample_rate)}"
            if self._cache is not None:
                data = self._cache.get_bytes(disk_key)
                if data is not None:
                    return data
            audio = synth.synthesize(str(kind), duration_s=duration_s, sample_rate=sample_rate, rng=int(seed))
            data = encode_wav(audio, sample_rate, subtype="PCM_16")
            if self._cache is not None:
                self._cache.set_bytes(disk_key, data)
            return data

        return SYNTH_CACHE.get(key, make)


@functools.cache
def synth_version() -> str:
    """A digest of the synthesiser's code: sounds cached on disk by an older synthesiser are never used."""
    return content_key(Path(synth.__file__).read_bytes() + Path(encode_wav.__code__.co_filename).read_bytes())


