"""Exceptions raised by :mod:`imgext`.

One root, :class:`ImgExtError`, so callers (the CLI, the app) can turn every
expected failure into a one-line message.  Leaves mix in the matching builtin
(``ValueError``, ``ConnectionError``) so generic handlers still work.
Messages name the offending value and say what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ImgExtError",
    "ParameterError",
    "ImageError",
    "AudioError",
    "SourceError",
    "NoSoundError",
    "SourceUnavailableError",
    "SourceTimeoutError",
    "CancelledError",
    "AuthError",
    "RateLimitedError",
    "CacheError",
]


class ImgExtError(Exception):
    """Root of every error :mod:`imgext` raises on purpose."""


class ParameterError(ImgExtError, ValueError):
    """A parameter is out of range or of the wrong kind."""


class ImageError(ImgExtError, ValueError):
    """An uploaded or given image cannot be used (not an image, truncated, too large ...)."""


class AudioError(ImgExtError, ValueError):
    """A sound file cannot be decoded or used (corrupt, empty, too short ...)."""


class SourceError(ImgExtError):
    """A sound source (Freesound, a local library) failed."""


class SourceUnavailableError(SourceError, ConnectionError):
    """The source cannot be reached (network down, timeouts, repeated 5xx)."""


class SourceTimeoutError(SourceUnavailableError, TimeoutError):
    """The source stalled: an answer did not arrive whole within its deadline, or the task's time budget ran out."""


class CancelledError(ImgExtError):
    """The user cancelled the task (e.g. "Find sounds" in the app)."""


class AuthError(SourceError):
    """The source refused our credentials (Freesound HTTP 401)."""


class RateLimitedError(SourceError):
    """The source throttled us (Freesound HTTP 429).

    Parameters
    ----------
    message : str
        Human-readable explanation.
    period : {"minute", "day", None}
        The throttling window named in the server's ``detail``; ``"day"`` means
        no retry will help until tomorrow.
    """

    def __init__(self, message: str, *, period: str | None = None) -> None:
        super().__init__(message)
        self.period = period


class NoSoundError(SourceError):
    """Nothing would sound: no object, no sound found for any, or every sound silent."""


class CacheError(ImgExtError):
    """The disk cache cannot be used (read-only, full, corrupt)."""
