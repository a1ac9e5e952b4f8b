"""Sound sources: where an object's sound comes from.

One small interface, :class:`SoundSource` (``search`` then ``fetch``), and its
implementations:

* :class:`BuiltinSource` synthesises a sound procedurally for every label
  category (:mod:`imgext.synth`), offline and with no account; every output says
  it is synthetic.
* :class:`LocalLibrary` searches a folder of audio files by tags taken from
  file names or JSON sidecars.
* :class:`imgext.freesound.FreesoundSource` searches Freesound (see that module).

:func:`open_source` turns the command line's ``--source`` spec into one of them.
"""

from __future__ import annotations

from dataclasses import replace

from imgext.audio.io import DEFAULT_SAMPLE_RATE
from imgext.errors import AuthError, ParameterError, RateLimitedError, SourceTimeoutError, SourceUnavailableError
from imgext.sounds.base import Candidate, SoundSource
from imgext.sounds.builtin import BuiltinSource
from imgext.sounds.cache import DiskCache
from imgext.sounds.library import LocalLibrary
from imgext.vision.placement import LabelMap


class FallbackSource:
    """A primary source, and a second one for the terms the first finds nothing for.

    Typical use: ``freesound+builtin`` gives real recordings where Freesound
    has them and a synthetic sound (labelled as such) where it has none.
    Errors of the primary (key refused, rate limit, network) are not hidden
    behind the fallback: they propagate, so the user learns about them.  A
    primary that *stalls* (a request past its deadline, the task's time budget
    spent) is the exception: the term gets the secondary's sounds and a note
    says why, so a render finishes with what it has instead of waiting.

    With ``on_error`` (the app's ticked fallback), *any* failure of the primary
    (unreachable, key refused, rate limited) falls back too, and is said in
    :attr:`notes` and :attr:`failure`; after the first such failure the primary
    is not asked again for the other terms (it would fail the same way, slowly).
    """

    def __init__(self, primary: SoundSource, secondary: SoundSource, *, on_error: bool = False) -> None:
        self.primary, self.secondary = primary, secondary
        self.name = f"{primary.name}+{secondary.name}"
        self.notes: list[str] = []
        self.on_error = bool(on_error)
        self.failure: Exception | None = None  # the primary's failure that sent every later term to the secondary

    def describe(self) -> str:
        return f"{self.primary.describe()}, with {self.secondary.describe()} where it finds nothing"

    def search(self, query: str, *, n: int = 10, synth_kind: str | None = None, role: str | None = None) -> list[Candidate]:
        if self.failure is not None:
            return self._fallback(query, f"{self.primary.name} could not be used ({self.failure})", n=n,
                                  synth_kind=synth_kind, role=role)
        try:
            found = search_with_role(self.primary, query, n=n, synth_kind=synth_kind, role=role)
        except SourceTimeoutError as exc:
            self.notes.append(f"{self.primary.name} stalled for {query!r} ({exc}); using {self.secondary.name} sounds")
            return self._fallback(query, f"{self.primary.name} stalled ({exc})", n=n, synth_kind=synth_kind, role=role)
        except (SourceUnavailableError, AuthError, RateLimitedError) as exc:
            if not self.on_error:
                raise
            self.failure = exc
            self.notes.append(f"{self.primary.name} could not be used ({exc}); using {self.secondary.name} sounds instead")
            return self._fallback(query, f"{self.primary.name} could not be used ({exc})", n=n, synth_kind=synth_kind,
                                  role=role)
        if found:
            return found
        self.notes.append(f"{self.primary.name} found nothing for {query!r}; using {self.secondary.name} sounds")
        return self._fallback(query, f"{self.primary.name} found nothing for {query!r}", n=n, synth_kind=synth_kind,
                              role=role)

    def _fallback(self, query: str, why: str, **kw) -> list[Candidate]:
        """The secondary's candidates, each saying in ``extra["fallback"]`` why it stands in (shown per object)."""
        return [replace(c, extra={**c.extra, "fallback": why}) for c in search_with_role(self.secondary, query, **kw)]

    def similar(self, candidate: Candidate, *, n: int = 10, query: str = "", role: str | None = None) -> list[Candidate]:
        """Sounds like ``candidate`` from the source that offered it (empty when it cannot tell)."""
        owner = self._owner(candidate)
        if not hasattr(owner, "similar"):
            return []
        return owner.similar(candidate, n=n, query=query, role=role)

    def stand_in(self, query: str, *, n: int = 1, synth_kind: str | None = None, role: str | None = None) -> list[Candidate]:
        """The secondary's candidates for ``query``: for an object whose primary sound stalled while downloading."""
        return search_with_role(self.secondary, query, n=n, synth_kind=synth_kind, role=role)

    def _owner(self, candidate: Candidate) -> SoundSource:
        return self.secondary if candidate.source == self.secondary.name else self.primary

    def fetch(self, candidate: Candidate, *, duration_s: float, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
        return self._owner(candidate).fetch(candidate, duration_s=duration_s, sample_rate=sample_rate)

    def invalidate(self, candidate: Candidate) -> None:
        owner = self._owner(candidate)
        if hasattr(owner, "invalidate"):
            owner.invalidate(candidate)


def search_with_role(source: SoundSource, query: str, *, n: int, synth_kind: str | None, role: str | None) -> list[Candidate]:
    """``source.search``, passing ``role`` to sources that take one (all of ours do; a user's own may not)."""
    import inspect

    try:
        takes_role = "role" in inspect.signature(source.search).parameters
    except (TypeError, ValueError):
        takes_role = False
    if takes_role:
        return source.search(query, n=n, synth_kind=synth_kind, role=role)
    return source.search(query, n=n, synth_kind=synth_kind)


def open_source(spec: str | None, *, settings=None, labels: LabelMap | None = None, fallback_on_error: bool = False,
                **freesound_kw) -> SoundSource:
    """Open a source from a spec: ``"builtin"``, ``"local:PATH"``, ``"freesound"``, or ``"A+B"``.

    ``"A+B"`` searches A and falls back to B for terms A finds nothing for
    (e.g. ``"freesound+builtin"``); with ``fallback_on_error`` also when A fails
    (see :class:`FallbackSource`).  ``None`` picks Freesound when an API key
    is configured, else the built-in source.

    Raises
    ------
    ParameterError
        Unknown spec, missing folder, or Freesound without a key.
    """
    from imgext.settings import load_settings

    settings = settings or load_settings()
    if spec is None:
        spec = "freesound" if settings.freesound_api_key else "builtin"
    spec = spec.strip()
    if "+" in spec and not spec.startswith("local:"):
        first, _, rest = spec.partition("+")
        return FallbackSource(
            open_source(first, settings=settings, labels=labels, **freesound_kw),
            open_source(rest, settings=settings, labels=labels, fallback_on_error=fallback_on_error, **freesound_kw),
            on_error=fallback_on_error,
        )
    if spec.startswith("local:") and spec.endswith("+builtin"):
        return FallbackSource(LocalLibrary(spec[len("local:") : -len("+builtin")]),
                              BuiltinSource(labels, cache=_cache_of(settings, freesound_kw)), on_error=fallback_on_error)
    if spec == "builtin":
        return BuiltinSource(labels, cache=_cache_of(settings, freesound_kw))
    if spec.startswith("local:"):
        return LocalLibrary(spec[len("local:") :])
    if spec == "freesound":
        from imgext.sounds.freesound import FreesoundSource

        if not settings.freesound_api_key:
            raise ParameterError(
                "Freesound needs an API key: set FREESOUND_API_KEY (get one at https://freesound.org/apiv2/apply)"
            )
        return FreesoundSource.from_settings(settings, **freesound_kw)
    raise ParameterError(f"unknown sound source {spec!r}; use builtin, local:PATH or freesound")


def _cache_of(settings, kw: dict) -> DiskCache:
    """The disk cache a source shares: the caller's (``cache=``, the app's shared one), else ``settings.cache_dir``."""
    cache = kw.get("cache")
    return cache if cache is not None else DiskCache(settings.cache_dir, size_limit_bytes=settings.cache_size_bytes)
