"""A local library: a folder of audio files searched by tags from file names or JSON sidecars."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from imgext.audio.io import DEFAULT_SAMPLE_RATE, read_bounded
from imgext.errors import ParameterError, SourceError
from imgext.sounds.base import AUDIO_EXTENSIONS, Candidate, words_of


@dataclass(frozen=True)
class _LibraryEntry:
    path: Path
    rel: str
    meta: Mapping


class LocalLibrary:
    """A folder of audio files searched by tags.

    Tags come from the file name (``dog_bark-02.wav`` -> dog, bark), from a
    per-file sidecar ``<file>.json`` or from a ``library.json`` at the root
    mapping relative paths to ``{"name", "tags", "author", "license",
    "license_url", "url", "description"}``.

    Parameters
    ----------
    root : path
        The folder (searched recursively; symbolic links leaving it are ignored).
    """

    name = "local"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ParameterError(f"local library folder not found: {os.fspath(root)}")
        self._entries = self._scan()
        if not self._entries:
            raise ParameterError(f"local library {self.root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")

    def describe(self) -> str:
        return f"local library {self.root} ({len(self._entries)} files)"

    def _scan(self) -> list[_LibraryEntry]:
        index: Mapping = {}
        index_path = self.root / "library.json"
        if index_path.is_file():
            try:
                index = json.loads(index_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ParameterError(f"cannot read {index_path}: {exc}") from None
            if not isinstance(index, Mapping):
                raise ParameterError(f"{index_path} must map file names to objects")
        entries = []
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                continue
            real = path.resolve()
            if self.root not in real.parents:
                continue
            rel = path.relative_to(self.root).as_posix()
            meta = dict(index.get(rel, {})) if isinstance(index.get(rel, {}), Mapping) else {}
            sidecar = path.with_name(path.name + ".json")
            if sidecar.is_file():
                try:
                    side = json.loads(sidecar.read_text(encoding="utf-8"))
                    if isinstance(side, Mapping):
                        meta.update(side)
                except (OSError, ValueError):
                    pass  # a broken sidecar falls back to the file name's tags
            entries.append(_LibraryEntry(path=path, rel=rel, meta=meta))
        return entries

    def _candidate(self, entry: _LibraryEntry) -> Candidate:
        meta = entry.meta
        name_words = words_of(Path(entry.rel).stem) + [w for part in Path(entry.rel).parts[:-1] for w in words_of(part)]
        tags = meta.get("tags")
        tags = tuple(str(t).lower() for t in tags) if isinstance(tags, (list, tuple)) else tuple(dict.fromkeys(name_words))
        try:
            duration = float(sf.info(str(entry.path)).duration)
        except Exception:  # unreadable files still appear; fetching them reports the error
            duration = None
        license_name = str(meta.get("license", "unknown (local file)"))
        return Candidate(
            id=f"local:{entry.rel}",
            name=str(meta.get("name", Path(entry.rel).stem)),
            source="local",
            author=str(meta.get("author", "unknown")),
            license=license_name,
            license_url=meta.get("license_url"),
            url=meta.get("url"),
            tags=tags,
            duration_s=duration,
            description=str(meta.get("description", "")),
            commercial_ok="noncommercial" not in license_name.lower().replace("-", "").replace(" ", ""),
            file_ext=entry.path.suffix.lstrip(".").lower(),
            extra={"path": entry.rel},
        )

    def search(self, query: str, *, n: int = 10, synth_kind: str | None = None, role: str | None = None) -> list[Candidate]:
        words = set(words_of(query))
        if not words:
            return []
        scored = []
        for entry in self._entries:
            cand = self._candidate(entry)
            vocab = set(cand.tags) | set(words_of(cand.name))
            hits = len(words & vocab)
            if hits:
                scored.append((-hits, entry.rel, cand))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [c for _, _, c in scored[: max(0, int(n))]]

    def fetch(self, candidate: Candidate, *, duration_s: float, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
        rel = candidate.extra.get("path") or candidate.id.removeprefix("local:")
        path = (self.root / rel).resolve()
        if self.root not in path.parents:
            raise SourceError(f"refusing to read {rel!r}: it lies outside the library folder")
        return read_bounded(path, name=candidate.name)  # bounded: a 2 GB sparse WAV is refused, not read


