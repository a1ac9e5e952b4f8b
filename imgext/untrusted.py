"""Values from outside (Freesound, a server at ``IMGEXT_FREESOUND_URL``, local-library sidecars, exceptions).

Everything a page shows or plays that did not come from our own code passes
through here:

* :func:`text` makes a string safe to interpolate into Streamlit Markdown
  (``st.markdown``, ``st.caption``, ``st.error``, toasts, progress and status
  labels): Markdown and LaTeX are escaped, GFM autolinks (``www.x.example``,
  ``https://...``, ``a@b.example``) and ``:material/...:`` / emoji / colour
  shortcodes are broken with an invisible zero-width space, and huge strings are
  shortened.
* :class:`Origins` knows which hosts are ours: the configured API's own host and
  (for the real Freesound) its known preview CDN.  :meth:`Origins.media_url`
  passes a preview or image URL only when it is ``http(s)`` on one of those
  hosts; never a path (``st.audio`` serves a non-URL string as a *local file*),
  ``file:``, ``data:`` or ``javascript:``.  :meth:`Origins.link` makes a
  Markdown link only to the API's own site and shows its host; anything else
  becomes plain text.
* :func:`clean_previews` keeps only the acceptable preview URLs of a record,
  so the server never downloads from (or hands to the browser) anything else.
* :func:`error_text` turns an exception into a message without internals
  (temporary paths, ``<_io.BytesIO object at 0x...>``, folders on the server).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "FREESOUND_HOSTS",
    "FREESOUND_MEDIA_HOSTS",
    "MAX_TEXT",
    "Origins",
    "clean_previews",
    "error_text",
    "scrub",
    "shorten",
    "text",
]

MAX_TEXT = 200
"""Characters of one untrusted string shown on a page (a 2 MB sound name is shortened)."""

MAX_URL = 2048
"""Longest URL accepted from outside."""

FREESOUND_HOSTS = frozenset({"freesound.org", "www.freesound.org"})
"""Freesound's own site (sound pages, user pages)."""

FREESOUND_MEDIA_HOSTS = FREESOUND_HOSTS | {"cdn.freesound.org"}
"""Where Freesound serves previews and images from (``CDN_PREVIEWS_URL`` is ``https://cdn.freesound.org/previews/``)."""

_ZW = "\u200b"  # zero-width space: invisible, breaks autolinks and shortcodes
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$&])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def shorten(value: object, limit: int = MAX_TEXT) -> str:
    """``str(value)`` on one line without control or bidi characters, at most ``limit`` characters."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > 4 * limit:  # never run regexes over megabytes
        s = s[: 4 * limit]
    s = " ".join(_CONTROL.sub(" ", s).split())
    return s if len(s) <= limit else s[: max(1, limit - 1)].rstrip() + "…"


def text(value: object, limit: int = MAX_TEXT) -> str:
    """An untrusted string made literal inside Streamlit Markdown.

    Parameters
    ----------
    value : object
        Anything; ``str()`` of it is shown.
    limit : int
        Most characters kept (before escaping).

    Returns
    -------
    str
        Escaped text: no Markdown, no HTML, no LaTeX, no link of any kind (GFM
        autolinks are broken with a zero-width space), no ``:icon:`` or
        ``:color[...]`` directive.
    """
    s = shorten(value, limit)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = s.replace(":", ":" + _ZW)  # https://, mailto:, :material/x:, :smile:, :red[...]
    s = s.replace("@", "@" + _ZW)  # user@host.example
    return re.sub(r"(?i)(w)(ww)", r"\1" + _ZW + r"\2", s)  # www.host.example


def _host_port(parts) -> str | None:
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if port in (None, default) else f"{host}:{port}"


@dataclass(frozen=True)
class Origins:
    """Which hosts a page may load media from and link to.

    Parameters
    ----------
    api_url : str
        The configured API root (``https://freesound.org/apiv2`` or ``IMGEXT_FREESOUND_URL``).

    Attributes
    ----------
    media_hosts : frozenset of str
        ``host`` or ``host:port`` allowed for previews and images.
    link_hosts : frozenset of str
        Hosts a page may link to.
    """

    media_hosts: frozenset
    link_hosts: frozenset

    @classmethod
    def for_api(cls, api_url: str | None) -> Origins:
        parts = urlsplit(str(api_url or ""))
        own = _host_port(parts) if parts.scheme in ("http", "https") else None
        if own is None:
            return cls(frozenset(), frozenset())
        if own in FREESOUND_HOSTS:
            return cls(FREESOUND_MEDIA_HOSTS, FREESOUND_HOSTS)
        return cls(frozenset({own}), frozenset({own}))

    def _check(self, value: object, hosts: frozenset) -> tuple[str | None, str | None]:
        if not isinstance(value, str) or not value:
            return None, "no address"
        if len(value) > MAX_URL:
            return None, "the address is too long"
        if not value.isascii() or any(c.isspace() or ord(c) < 32 or c == "\\" for c in value):
            return None, "the address has characters a URL may not have"
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            return None, "the address is not http(s)"
        if "@" in parts.netloc:
            return None, "the address carries a user name"
        host = _host_port(parts)
        if host is None or host.lower() not in hosts:
            return None, "the address is not on the sound source's own server"
        return value, None

    def media_url(self, value: object) -> tuple[str | None, str | None]:
        """``(url, None)`` when ``value`` may be handed to the browser as media, else ``(None, reason)``."""
        return self._check(value, self.media_hosts)

    def link_url(self, value: object) -> str | None:
        """``value`` when a page may link to it (the API's own site), else None."""
        return self._check(value, self.link_hosts)[0]

    def link(self, label: object, url: object) -> str:
        """Markdown: ``[label](url) (host)`` for the source's own site, else the escaped label alone."""
        ok = self.link_url(url)
        if ok is None:
            return text(label)
        host = urlsplit(ok).hostname
        return f"[{text(label)}]({ok}) ({text(host)})"


def clean_previews(previews: object, origins: Origins) -> tuple[dict, list[str]]:
    """The acceptable preview URLs of a record.

    Parameters
    ----------
    previews : object
        The record's ``previews`` value (should be a dict of ``preview-hq-mp3`` ... -> URL).
    origins : Origins

    Returns
    -------
    kept : dict
        Only string keys whose URL :meth:`Origins.media_url` accepts.
    reasons : list of str
        Why the others were dropped (no values quoted).
    """
    if not isinstance(previews, Mapping):
        return {}, ([] if previews in (None, "", {}) else ["the previews were not a list of addresses"])
    kept, reasons = {}, []
    for key, value in list(previews.items())[:16]:
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9-]{1,40}", key):
            continue
        url, why = origins.media_url(value)
        if url is None:
            reasons.append(f"{key}: {why}")
        else:
            kept[key] = url
    return kept, reasons


_TEMP_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/|\\)(?:[^\s'\"<>:]+(?:/|\\))+[^\s'\"<>:,;)]*")
_OBJ_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def scrub(message: str, *, hidden: Iterable[str] = ()) -> str:
    """``message`` without file paths, object reprs and the strings in ``hidden`` (e.g. folders, keys)."""
    s = str(message)
    for h in hidden:
        if h:
            s = s.replace(str(h), "…")
    s = _OBJ_REPR.sub("the data", s)
    return _TEMP_PATH.sub("a file", s)


def error_text(exc: BaseException, *, hidden: Iterable[str] = (), limit: int = 400) -> str:
    """A one-line, Markdown-safe message for ``exc`` with no internals (see :func:`scrub`)."""
    return text(scrub(str(exc) or type(exc).__name__, hidden=hidden), limit)
