"""Freesound APIv2: a small client over ``requests`` and the sound source built on it.

:class:`FreesoundClient` speaks ``GET {root}/search/`` with ``Authorization:
Token KEY``, explicit ``fields=``, ``page_size`` and pagination via ``next``.
Every request has a timeout; connection errors and 5xx are retried a bounded
number of times with backoff; 401 says the key was refused; 429 is read from
``detail`` (Freesound sends no ``Retry-After``): per-minute limits are waited
out within a budget, a per-day limit stops further requests and the source
continues from the cache.

:class:`FreesoundSource` adds the filter preset, the disk cache (search
results as JSON text with a TTL, preview bytes keyed by sound id + quality)
and preview downloads (HQ MP3, OGG as fallback).  The API key is sent only to
the API root's host and never appears in messages.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import heapq
import http.client
import itertools
import json
import math
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from imgext.audio.io import DEFAULT_SAMPLE_RATE, decode
from imgext.budget import Budget, current_budget
from imgext.errors import (
    AudioError,
    AuthError,
    ParameterError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from imgext.settings import DEFAULT_FREESOUND_URL
from imgext.sounds.base import Candidate, words_of
from imgext.sounds.cache import DEFAULT_SEARCH_TTL_S, DiskCache, cache_key
from imgext.sounds.filters import PresetStore, SearchFilter, role_filters
from imgext.untrusted import Origins, clean_previews

__all__ = [
    "SEARCH_FIELDS",
    "license_info",
    "candidate_from_record",
    "relaxed_queries",
    "FreesoundClient",
    "FreesoundSource",
]

SEARCH_FIELDS = (
    "id", "name", "tags", "description", "username", "license", "duration", "samplerate",
    "channels", "previews", "url", "avg_rating", "num_ratings",
    "category", "subcategory", "category_code", "single_event", "loopable", "reverbness",
    "duration_effective", "sim_laion_clap",
)
"""Fields requested with every search, so no per-sound request is ever needed.

Beside the metadata: the Broad Sound Taxonomy (``category``, ``subcategory``,
``category_code``), the content descriptors the role filter and the relevance
score use (``single_event``, ``loopable``, ``reverbness``, ``duration_effective``)
and the 512-d LAION-CLAP vector (``sim_laion_clap``) that marks near-duplicates.
Descriptors are ``null`` for sounds Freesound has not analysed.
"""

DESCRIPTOR_FIELDS = ("category", "subcategory", "category_code", "single_event", "loopable", "reverbness",
                     "duration_effective")
"""Record fields copied into :attr:`Candidate.extra` (and so into scene.json)."""

DEFAULT_TIMEOUT = (3.05, 20.0)
"""(connect, read) timeout in seconds: how long a connection may take and how long the server may stay silent."""

DEFAULT_SEARCH_DEADLINE_S = 20.0
"""Total time one search request may take (connect to last byte), in seconds."""

DEFAULT_PREVIEW_DEADLINE_S = 60.0
"""Total time one preview download may take (connect to last byte), in seconds."""

MAX_PREVIEW_BYTES = 20 * 1024 * 1024
"""Largest preview accepted, decoded (HQ MP3 previews are ~1 MB per minute: 20 minutes; a longer one is
skipped for another candidate). Downloads run 4 at once, so previews in flight hold at most ~80 MB."""

MAX_JSON_BYTES = 4 * 1024 * 1024
"""Largest API answer accepted, decoded (a page of 150 full records is ~0.5 MB)."""

_LICENSE_PATTERNS = [
    (re.compile(r"publicdomain/zero/(\d\.\d)"), "CC0 {v}", True),
    (re.compile(r"licenses/by-nc/(\d\.\d)"), "CC BY-NC {v}", False),
    (re.compile(r"licenses/by/(\d\.\d)"), "CC BY {v}", True),
    (re.compile(r"licenses/sampling\+/(\d\.\d)"), "Sampling+ {v}", True),
]
_LICENSE_NAMES = {
    "creative commons 0": ("CC0 1.0", True),
    "attribution": ("CC BY", True),
    "attribution noncommercial": ("CC BY-NC", False),
    "sampling+": ("Sampling+", True),
}


def license_info(value: str | None) -> tuple[str, bool]:
    """Name with version and commercial use for a Freesound licence.

    Parameters
    ----------
    value : str
        A deed URL (what the API returns, e.g. ``http://creativecommons.org/licenses/by/4.0/``)
        or a licence name (``"Attribution"``).

    Returns
    -------
    name : str
        ``"CC0 1.0"``, ``"CC BY 4.0"``, ``"CC BY-NC 3.0"``, ``"Sampling+ 1.0"`` ...
    commercial_ok : bool
        False for NonCommercial licences.
    """
    text = (value or "").strip()
    for pattern, template, commercial in _LICENSE_PATTERNS:
        m = pattern.search(text)
        if m:
            return template.format(v=m.group(1)), commercial
    if text.lower() in _LICENSE_NAMES:
        return _LICENSE_NAMES[text.lower()]
    noncommercial = "noncommercial" in text.lower().replace("-", "").replace(" ", "") or "by-nc" in text.lower()
    return text or "unknown licence", not noncommercial


_RATE = re.compile(r"\((\d+)\s*/\s*(minute|min|hour|day)\)", re.I)


# --------------------------------------------------------------------------- deadlines that bound everything
#
# requests' read timeout restarts with every byte, so a server that drips its headers or body is never
# timed out.  Every attempt therefore runs under a _Guard with an absolute deadline: a watchdog thread
# shuts the attempt's socket when the deadline (or the task's Budget) passes or the Budget is cancelled,
# which wakes a read blocked anywhere (status line, headers, body).  The connection classes below tell
# the guard of the current thread which connection it must watch.


class _Watchdog:
    """One daemon thread calling callbacks at monotonic times (cancellable)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[list] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, fn: Callable[[], None]) -> list:
        entry = [when, next(self._seq), fn]
        with self._cv:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="imgext-net-watchdog", daemon=True)
                self._thread.start()
            self._cv.notify()
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[2] = None  # removed lazily

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap or self._heap[0][2] is None:
                    if self._heap:
                        heapq.heappop(self._heap)
                    else:
                        self._cv.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                fn = heapq.heappop(self._heap)[2]
            if fn is not None:
                with contextlib.suppress(Exception):
                    fn()


_WATCHDOG = _Watchdog()
_TLS = threading.local()


class _Guard:
    """The connections of one attempt, shut when it must end (deadline, budget or cancel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: list = []
        self.fired: str | None = None  # "deadline" | "budget" | "cancel"
        self._done = False

    def attach(self, conn) -> None:
        with self._lock:
            self._conns.append(conn)

    def fire(self, why: str) -> None:
        with self._lock:
            if self._done or self.fired:
                return
            self.fired = why
            conns = list(self._conns)
        for conn in conns:
            _shut(conn)

    def close(self) -> None:
        with self._lock:
            self._done = True


def _shut(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _WatchedMixin:
    """Registers the connection with the current thread's guard; shuts it if the guard already fired."""

    def request(self, *args, **kwargs):
        guard = getattr(_TLS, "guard", None)
        if guard is not None:
            guard.attach(self)
        return super().request(*args, **kwargs)

    def getresponse(self, *args, **kwargs):
        guard = getattr(_TLS, "guard", None)
        if guard is not None and guard.fired:
            _shut(self)  # fired while connecting, before the socket existed
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPConnection(_WatchedMixin, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections a :class:`_Guard` can shut."""

    _POOLS: ClassVar[dict] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = dict(self._POOLS)
        return manager


@dataclass(frozen=True)
class _Reply:
    """A whole response: status, headers and the (decoded, size-capped) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class _Failed(Exception):
    """An attempt that failed in transit (retried): the final error to raise is ``error``."""

    def __init__(self, error: SourceError) -> None:
        super().__init__(str(error))
        self.error = error


def _read_body(resp: requests.Response, *, max_bytes: int, guard: _Guard, budget: Budget | None, key: object,
               what: str) -> bytes | None:
    """The body (None when the guard fired: a stall), decoded (gzip/deflate) with its DECODED size capped at ``max_bytes`` while it streams."""
    encoding = (resp.headers.get("Content-Encoding") or "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header, detected
    elif encoding in ("", "identity"):
        decoder = None
    else:
        raise SourceError(f"Freesound sent an unsupported Content-Encoding ({encoding[:20]!r}) while {what}")
    length = resp.headers.get("Content-Length", "")
    expected = int(length) if length.isdigit() else None
    too_large = _Failed(SourceError(f"Freesound's answer was larger than {_mb(max_bytes)} while {what}"))
    # small pieces, joined once at the end: no large buffer regrown (and left fragmented) per attempt
    pieces: list[bytes] = []
    size = received = 0
    read = getattr(resp.raw, "read1", None) or resp.raw.read
    while not guard.fired:
        chunk = read(65536, decode_content=False)
        if not chunk:
            break
        received += len(chunk)
        if budget is not None:
            budget.report(key, received, expected)
        if received > max_bytes:  # compressed bytes count too
            pieces.clear()
            raise too_large
        if decoder is None:
            pieces.append(chunk)
            size += len(chunk)
            continue
        try:
            data = chunk
            while data and not decoder.eof:
                out = decoder.decompress(data, min(_PIECE, max_bytes + 1 - size))  # never past the cap
                size += len(out)
                if size > max_bytes:
                    pieces.clear()  # an exception's traceback keeps this frame: drop the bytes now
                    raise too_large
                pieces.append(out)
                data = decoder.unconsumed_tail
        except zlib.error:
            raise SourceError(f"Freesound sent a damaged {encoding} body while {what}") from None
    if guard.fired:
        return None  # the caller reports the stall
    if expected is not None and received != expected:
        raise _Failed(_Interrupted(f"the download was cut short while {what} ({received} of {expected} bytes)"))
    if decoder is not None and not decoder.eof:
        raise _Failed(_Interrupted(f"the download was cut short while {what} (incomplete {encoding} body)"))
    return b"".join(pieces)


_PIECE = 256 * 1024
"""Most bytes one decompression step may produce."""


def _mb(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n // 1024} kB"


class FreesoundClient:
    """A Freesound APIv2 client.

    Every attempt has a total deadline (connect to last byte: slow headers, a
    dripping body and an endless one are all cut) and every body a size cap on
    its decoded size (a gzip bomb is stopped at the cap); a stalled, oversized
    or cut-short answer is a failed attempt, retried like a connection error;
    a host that stalled through every attempt of one request is not asked
    again by this client (its later requests fail at once, with the reason).
    A :class:`~imgext.budget.Budget` made current by the caller bounds all of
    it: no attempt outlives it and cancelling it interrupts the attempts in
    flight.

    Parameters
    ----------
    api_key : str
        Token (never printed).
    base_url : str
        API root, e.g. ``https://freesound.org/apiv2`` (``IMGEXT_FREESOUND_URL``).
    timeout : (float, float)
        Connect and read (silence between bytes) timeouts in seconds.
    search_deadline_s : float
        Total time one search request may take, in seconds (``IMGEXT_SEARCH_DEADLINE_S``).
    preview_deadline_s : float
        Total time one preview download may take, in seconds (``IMGEXT_PREVIEW_DEADLINE_S``).
    max_json_bytes, max_preview_bytes : int
        Largest decoded body accepted from the API and for a preview, in bytes.
    max_retries : int
        Retries after a failed attempt (connection error, stall, oversized or
        cut-short answer, 5xx), with exponential backoff.
    backoff_s : float
        First backoff in seconds (doubles each retry).
    minute_wait_s : float
        Pause after a per-minute 429 before trying again.
    rate_wait_budget_s : float
        Most time spent waiting out per-minute limits for one request.
    sleep : callable
        ``time.sleep`` (tests may shorten waits by passing small budgets instead).
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_FREESOUND_URL,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        search_deadline_s: float = DEFAULT_SEARCH_DEADLINE_S,
        preview_deadline_s: float = DEFAULT_PREVIEW_DEADLINE_S,
        max_json_bytes: int = MAX_JSON_BYTES,
        max_preview_bytes: int = MAX_PREVIEW_BYTES,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        minute_wait_s: float = 15.0,
        rate_wait_budget_s: float = 65.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key or not str(api_key).strip():
            raise ParameterError("a Freesound API key is required (FREESOUND_API_KEY)")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ParameterError(f"IMGEXT_FREESOUND_URL={base_url!r} is not an http(s) URL")
        for name, value in (("search_deadline_s", search_deadline_s), ("preview_deadline_s", preview_deadline_s),
                            ("max_json_bytes", max_json_bytes), ("max_preview_bytes", max_preview_bytes)):
            if not value > 0:
                raise ParameterError(f"{name}={value!r} must be positive")
        self._key = str(api_key).strip()
        self.base_url = base_url.rstrip("/")
        self._api_origin = (parts.scheme, parts.netloc)
        self._api_path = parts.path.rstrip("/") + "/"
        self.timeout = timeout
        self.search_deadline_s = float(search_deadline_s)
        self.preview_deadline_s = float(preview_deadline_s)
        self.max_json_bytes = int(max_json_bytes)
        self.max_preview_bytes = int(max_preview_bytes)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.minute_wait_s = float(minute_wait_s)
        self.rate_wait_budget_s = float(rate_wait_budget_s)
        self._sleep = sleep
        self._local = threading.local()
        self.daily_limit_hit = False
        self.stalled: dict[str, str] = {}  # host -> why: a host that stalled through every attempt is not asked again
        self.request_count = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FreesoundClient(base_url={self.base_url!r})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = "ImageExtender/0.1 (+https://freesound.org/docs/api/)"
            session.headers["Accept-Encoding"] = "gzip, deflate"  # the encodings _read_body decodes (and caps)
            adapter = _WatchedAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def _is_api(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == self._api_origin and (parts.path.rstrip("/") + "/").startswith(self._api_path)

    def _pause(self, seconds: float) -> None:
        budget = current_budget()
        if budget is None:
            self._sleep(seconds)
        else:
            budget.sleep(seconds)
            budget.check()

    def _attempt(self, url: str, *, params: dict | None, deadline_s: float, max_bytes: int, what: str) -> _Reply:
        """One attempt under a guard: connect, follow redirects, read the whole (capped) body."""
        budget = current_budget()
        if budget is not None:
            budget.check(what)
        limit = time.monotonic() + deadline_s
        by_budget = budget is not None and budget.deadline < limit
        guard = _Guard()
        timer = _WATCHDOG.schedule(min(limit, budget.deadline) if by_budget else limit,
                                   lambda: guard.fire("budget" if by_budget else "deadline"))
        handle = budget.on_cancel(lambda: guard.fire("cancel")) if budget is not None else 0
        previous, _TLS.guard = getattr(_TLS, "guard", None), guard
        key = object()
        resp = None
        read_timeout = min(float(self.timeout[1]), deadline_s) if isinstance(self.timeout, tuple) else self.timeout
        timeout = (self.timeout[0], read_timeout) if isinstance(self.timeout, tuple) else self.timeout
        complete = False
        try:
            try:
                for _hop in range(6):
                    headers = {"Authorization": f"Token {self._key}"} if self._is_api(url) else {}
                    resp = self._session().get(url, params=params, headers=headers, timeout=timeout, stream=True,
                                               allow_redirects=False)
                    location = resp.headers.get("Location") if resp.status_code in (301, 302, 303, 307, 308) else None
                    if not location:
                        break
                    resp.close()  # a redirect's body is never read
                    url, params = urljoin(resp.url, location), None
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise SourceError(f"Freesound redirected to a non-http URL while {what}")
                else:
                    raise SourceError(f"Freesound redirected too often while {what}")
                try:
                    cap = max_bytes if resp.status_code < 400 else 65536
                    body = _read_body(resp, max_bytes=cap, guard=guard, budget=budget, key=key, what=what)
                    complete = body is not None
                finally:
                    if complete:
                        resp.raw.release_conn()  # read to its end: the connection is reused (keep-alive)
                    else:
                        resp.close()
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
                if guard.fired:
                    body = None
                elif isinstance(exc, requests.Timeout):
                    raise _Failed(SourceTimeoutError(f"Freesound timed out while {what}")) from None
                elif isinstance(exc, (requests.ConnectionError, urllib3.exceptions.HTTPError, OSError,
                                      http.client.HTTPException, requests.exceptions.ChunkedEncodingError)):
                    if resp is not None:
                        raise _Failed(_Interrupted(
                            f"the download was interrupted while {what} ({type(exc).__name__})")) from None
                    raise _Failed(_Interrupted(f"Freesound could not be reached while {what}")) from None
                else:
                    raise SourceError(f"Freesound request failed while {what}: {type(exc).__name__}") from None
            except Exception:
                if not guard.fired:
                    raise
                body = None  # whatever a read on a socket shut under it raised: the deadline ended it
            if body is None:
                if guard.fired == "cancel" and budget is not None:
                    budget.check(what)
                if guard.fired == "budget" and budget is not None:
                    raise SourceTimeoutError(f"{budget.what} ran out while {what}")
                raise _Failed(SourceTimeoutError(
                    f"Freesound stalled while {what}: no complete answer within {deadline_s:g} s"))
            return _Reply(resp.status_code, resp.headers, body, resp.url)
        finally:
            _TLS.guard = previous
            guard.close()
            _WATCHDOG.cancel(timer)
            if budget is not None:
                budget.forget(handle)
                budget.finished(key)

    def _get(self, url: str, *, params: dict | None = None, what: str, deadline_s: float, max_bytes: int) -> _Reply:
        """One GET with retries; maps statuses to our exceptions."""
        if self.daily_limit_hit and self._is_api(url):
            raise RateLimitedError("Freesound's daily request limit was reached; using cached results only", period="day")
        host = urlsplit(url).netloc
        if host in self.stalled:
            raise SourceTimeoutError(f"not asked again while {what}: {self.stalled[host]}")
        attempt, waited = 0, 0.0
        last: _Failed | None = None
        while True:
            with self._count_lock:
                self.request_count += 1
            try:
                try:
                    reply = self._attempt(url, params=params, deadline_s=deadline_s, max_bytes=max_bytes, what=what)
                except _Failed as failed:
                    failed.__traceback__ = None  # kept across attempts: must not pin the failed attempt's frames
                    last = failed
                    if host in self.stalled:  # another request to this host stalled out meanwhile
                        raise SourceTimeoutError(f"{failed.error}; not retried: {self.stalled[host]}") from None
                    if attempt < self.max_retries:
                        self._pause(self.backoff_s * 2**attempt)
                        attempt += 1
                        continue
                    error = type(failed.error)(f"{failed.error} (after {attempt + 1} attempts)")
                    if isinstance(error, SourceTimeoutError):
                        self.stalled[host] = str(error)
                    raise error from None
            except SourceTimeoutError as exc:  # the budget ran out: say what went wrong before
                if last is None or isinstance(exc, type(last.error)) and str(exc).startswith(str(last.error)):
                    raise
                raise SourceTimeoutError(f"{exc}; before that: {last.error}") from None
            status = reply.status
            if status < 400:
                return reply
            detail = _detail(reply.body)
            if status == 401:
                raise AuthError(f"the Freesound API key was refused (HTTP 401: {detail or 'Invalid token'})")
            if status == 429:
                period = _rate_period(detail)
                if period == "day":
                    self.daily_limit_hit = True
                    raise RateLimitedError(
                        f"Freesound's daily request limit was reached ({detail or 'HTTP 429'}); "
                        "continuing with cached sounds only until tomorrow",
                        period="day",
                    )
                if waited + self.minute_wait_s <= self.rate_wait_budget_s:
                    self._pause(self.minute_wait_s)
                    waited += self.minute_wait_s
                    continue
                raise RateLimitedError(
                    f"Freesound is throttling requests ({detail or 'HTTP 429'}); waited {waited:.0f} s, try again in a minute",
                    period=period or "minute",
                )
            if status >= 500 and attempt < self.max_retries:
                self._pause(self.backoff_s * 2**attempt)
                attempt += 1
                continue
            if status >= 500:
                raise SourceUnavailableError(f"Freesound had a server error while {what} (HTTP {status}, {attempt + 1} attempts)")
            if status == 404:
                raise _NotFound(detail)
            raise SourceError(f"Freesound refused the request while {what} (HTTP {status}: {detail or 'no detail'})")

    def search(
        self,
        query: str,
        *,
        filter: str = "",
        sort: str = "score",
        max_results: int = 10,
        page_size: int | None = None,
        fields: Sequence[str] = SEARCH_FIELDS,
    ) -> list[dict]:
        """Search sounds; follows ``next`` until ``max_results`` are collected.

        ``null`` results are skipped; a page past the end (404) ends pagination.
        Each page is one request with its own deadline (``search_deadline_s``).

        Returns
        -------
        list of dict
            Raw sound records with the requested ``fields``.
        """
        if max_results <= 0:
            return []
        if not query.strip() and not filter.strip():
            raise ParameterError("a Freesound search needs a query or a filter")
        params: dict | None = {
            "query": query,
            "fields": ",".join(fields),
            "page_size": str(min(150, page_size or max(15, max_results))),
            "sort": sort,
        }
        if filter:
            params["filter"] = filter
        return self._list(f"{self.base_url}/search/", params, max_results=max_results, what=f"searching for {query!r}")

    def similar(
        self,
        sound_id: int,
        *,
        filter: str = "",
        max_results: int = 10,
        fields: Sequence[str] = SEARCH_FIELDS,
        similarity_space: str = "laion_clap",
    ) -> list[dict]:
        """Sounds similar to ``sound_id``, most similar first (the sound itself excluded).

        Without a filter: ``GET /sounds/<id>/similar/``.  With one:
        ``GET /search/?similar_to=<id>&filter=...``, because the similar-sounds
        resource ignores ``filter`` (MTG/freesound ``apiv2/forms.py``
        ``SimilarityFormAPI.clean_filter`` returns None) while search applies it
        to a similarity query; the text query is then ignored.  Freesound
        returns only sounds above a cosine of 0.7 in the chosen space.

        Returns
        -------
        list of dict
            Raw sound records with the requested ``fields``.
        """
        sound_id = int(sound_id)
        params = {"fields": ",".join(fields), "page_size": str(min(150, max(15, max_results))),
                  "similarity_space": similarity_space}
        if filter.strip():
            url = f"{self.base_url}/search/"
            params.update({"similar_to": str(sound_id), "filter": filter})
        else:
            url = f"{self.base_url}/sounds/{sound_id}/similar/"
        found = self._list(url, params, max_results=max_results + 1, what=f"finding sounds like {sound_id}")
        return [r for r in found if r.get("id") != sound_id][:max_results]

    def _list(self, url: str, params: dict | None, *, max_results: int, what: str) -> list[dict]:
        """Follow a sound list's ``next`` links until ``max_results`` records are collected."""
        results: list[dict] = []
        pages = 0
        while url and len(results) < max_results and pages < 20:
            try:
                reply = self._get(url, params=params, what=what, deadline_s=self.search_deadline_s,
                                  max_bytes=self.max_json_bytes)
            except _NotFound:
                break  # past the last page
            try:
                body = json.loads(reply.body)
            except ValueError:
                raise SourceError(f"Freesound sent an unreadable response while {what}") from None
            if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
                raise SourceError(f"Freesound sent an unexpected response while {what}")
            results += [r for r in body.get("results", []) if isinstance(r, dict) and "id" in r]
            url = body.get("next")
            if url and (not isinstance(url, str) or not self._is_api(url)):
                break  # never follow (or send our key to) a foreign host
            params = None  # `next` carries every parameter
            pages += 1
        return results[:max_results]

    def download(self, url: str, *, max_bytes: int | None = None, what: str = "downloading a preview") -> bytes:
        """Download a file completely or raise; a short, stalled or oversized answer is retried, never returned.

        The deadline per attempt is ``preview_deadline_s``; the size cap ``max_bytes``
        (default ``max_preview_bytes``) applies to the decoded body.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise SourceError(f"refusing to download from a non-http URL while {what}")
        try:
            reply = self._get(url, what=what, deadline_s=self.preview_deadline_s,
                              max_bytes=self.max_preview_bytes if max_bytes is None else int(max_bytes))
        except _NotFound:
            raise SourceError(f"the preview is gone (HTTP 404) while {what}") from None
        if not reply.body:
            raise SourceError(f"the preview was empty while {what}")
        return reply.body


class _NotFound(SourceError):
    pass


class _Interrupted(SourceUnavailableError):
    pass


def _detail(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    return re.sub(r"\s+", " ", str(detail))[:300] if detail else ""


def _rate_period(detail: str) -> str | None:
    m = _RATE.search(detail or "")
    if not m:
        return "day" if "day" in (detail or "").lower() else None
    unit = m.group(2).lower()
    return {"min": "minute"}.get(unit, unit)


def relaxed_queries(query: str, *, max_variants: int = 4) -> list[str]:
    """The query, then looser versions of it, for when Freesound finds too few sounds.

    Freesound requires every word of a query (Solr ``q.op=AND``), so "footsteps
    voices" finds only sounds with both.  The variants drop words from the end
    ("car engine passing" -> "car engine" -> "car") and then try the other
    words alone ("passing" is never tried before "engine").  Ranking later
    prefers sounds that match more of the original words.
    """
    words = query.split()
    variants = [" ".join(words[:k]) for k in range(len(words), 0, -1)]
    variants += [w for w in words[1:]]
    out: list[str] = []
    for v in variants:
        if v and v not in out:
            out.append(v)
    return out[: max(1, max_variants)]


def candidate_from_record(r: dict) -> Candidate:
    """A :class:`Candidate` from one Freesound sound record (``/search/`` or ``/sounds/<id>/`` fields).

    Taxonomy and descriptors (:data:`DESCRIPTOR_FIELDS`) go into ``extra`` when
    present, the CLAP vector as ``extra["sim_laion_clap"]`` (a tuple of floats).

    Raises
    ------
    ValueError, TypeError, KeyError
        On a malformed record (bad id, wrong types).
    """
    licence, commercial = license_info(r.get("license"))
    tags = tuple(str(t).lower() for t in (r.get("tags") or []) if isinstance(t, str))
    rating = r.get("avg_rating")
    duration = r.get("duration")
    previews = r.get("previews")
    extra: dict = {"previews": dict(previews) if isinstance(previews, dict) else {}, "freesound_id": int(r["id"])}
    for name in DESCRIPTOR_FIELDS:
        value = r.get(name)
        if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
            extra[name] = value
    clap = r.get("sim_laion_clap")
    if isinstance(clap, list) and clap and all(isinstance(v, (int, float)) for v in clap):
        extra["sim_laion_clap"] = tuple(float(v) for v in clap)
    return Candidate(
        id=f"freesound:{int(r['id'])}",
        name=str(r.get("name") or f"sound {r['id']}"),
        source="freesound",
        author=str(r.get("username") or "unknown"),
        license=licence,
        license_url=r.get("license") if isinstance(r.get("license"), str) and "://" in r.get("license", "") else None,
        url=r.get("url") if isinstance(r.get("url"), str) else None,
        tags=tags,
        duration_s=float(duration) if isinstance(duration, (int, float)) else None,
        rating=float(rating) if isinstance(rating, (int, float)) else None,
        num_ratings=int(r.get("num_ratings") or 0),
        description=str(r.get("description") or "")[:2000],
        commercial_ok=commercial,
        file_ext="mp3",
        extra=extra,
    )


class FreesoundSource:
    """Freesound as a :class:`~imgext.sounds.base.SoundSource`, with a filter and a disk cache.

    Parameters
    ----------
    client : FreesoundClient
    cache : DiskCache, optional
    search_filter : SearchFilter, optional
    preview_quality : {"hq", "lq"}
    search_ttl_s : float
        How long cached search results are reused.
    """

    name = "freesound"

    def __init__(
        self,
        client: FreesoundClient,
        *,
        cache: DiskCache | None = None,
        search_filter: SearchFilter | None = None,
        preset_name: str | None = None,
        preview_quality: str = "hq",
        search_ttl_s: float = DEFAULT_SEARCH_TTL_S,
    ) -> None:
        if preview_quality not in ("hq", "lq"):
            raise ParameterError(f"preview_quality={preview_quality!r} must be 'hq' or 'lq'")
        self.client = client
        self.cache = cache or DiskCache(None)
        self.filter = search_filter or SearchFilter()
        self.preset_name = preset_name
        self.preview_quality = preview_quality
        self.search_ttl_s = float(search_ttl_s)
        self.notes: list[str] = []
        self._origin = cache_key(client.base_url)[:16]
        self.origins = Origins.for_api(client.base_url)

    @classmethod
    def from_settings(cls, settings, *, preset: str | None = None, search_filter: SearchFilter | None = None,
                      cache: DiskCache | None = None, **client_kw) -> FreesoundSource:
        """Build from :class:`~imgext.settings.Settings` (key, API root, cache folder, presets folder).

        ``preset`` names the filter; it is read from the presets folder unless ``search_filter`` gives it
        (a visitor's own preset, or a preset the user then edited, is not in the folder).
        """
        client_kw.setdefault("search_deadline_s", settings.search_deadline_s)
        client_kw.setdefault("preview_deadline_s", settings.preview_deadline_s)
        client = FreesoundClient(settings.freesound_api_key, base_url=settings.freesound_url, **client_kw)
        if preset and search_filter is None:
            search_filter = PresetStore(settings.data_dir).load(preset)
        if cache is None:
            cache = DiskCache(settings.cache_dir, size_limit_bytes=settings.cache_size_bytes)
        return cls(client, cache=cache, search_filter=search_filter, preset_name=preset)

    def describe(self) -> str:
        preset = f", preset {self.preset_name!r}" if self.preset_name else ""
        return f"Freesound ({self.client.base_url}{preset})"

    def _search_key(self, kind: str, query: str, n: int, filters: Sequence[str]) -> str:
        return f"{kind}:" + cache_key(self._origin, query, list(filters), self.filter.sort, n, SEARCH_FIELDS)

    def filters_for(self, query: str, role: str | None = None) -> list[str]:
        """The ``filter=`` values tried for ``query``, strictest first (role steps, then taxonomy only).

        See :func:`imgext.sounds.filters.role_filters`: events ask for single
        events, beds and areas for long or loopable recordings, and music,
        instrument samples and solo speech are left out unless the query asks for them.
        """
        return role_filters(role, words=words_of(query), base=self.filter.to_solr())

    def _cached(self, key: str) -> list[Candidate] | None:
        cached = self.cache.get_text(key)
        if cached is None:
            return None
        try:
            return self._candidates(json.loads(cached))
        except (ValueError, TypeError, KeyError):
            self.cache.delete(key)
            return None

    def search(self, query: str, *, n: int = 10, synth_kind: str | None = None, role: str | None = None) -> list[Candidate]:
        """Up to ``n`` candidates, from the cache when fresh, else from the API.

        The role's filters are tried strictest first with the whole query (the
        ambience, asked for with an ``amb_`` ``synth_kind``, by
        :data:`~imgext.sounds.filters.AMBIENCE_FILTERS`), then
        looser versions of the query (:func:`relaxed_queries`) with the
        taxonomy filter alone, until ``n`` sounds are found.  On a per-day
        limit or an unreachable server, a cached result (if any) is used and a
        note records it; otherwise the error propagates.
        """
        if isinstance(synth_kind, str) and synth_kind.startswith("amb_"):
            role = "ambience"  # the scene's ambience (its built-in kind is an amb_ one): long, loopable recordings
        filters = self.filters_for(query, role)
        key = self._search_key("search", query, n, filters)
        cached = self._cached(key)
        if cached is not None:
            return cached
        records: list[dict] = []
        seen: set = set()
        steps = [(query, f) for f in filters] + [(v, filters[-1]) for v in relaxed_queries(query)[1:]]
        for variant, flt in steps:
            found = self.client.search(variant, filter=flt, sort=self.filter.sort, max_results=n)
            records += [r for r in found if r["id"] not in seen and not seen.add(r["id"])]
            if len(records) >= n:
                break
        records = records[:n]
        self.cache.set_text(key, json.dumps(records), expire_s=self.search_ttl_s)
        return self._candidates(records)

    def similar(self, candidate: Candidate, *, n: int = 10, query: str = "", role: str | None = None) -> list[Candidate]:
        """Up to ``n`` sounds like ``candidate`` (Freesound's LAION-CLAP similarity), with the same filters as search.

        Parameters
        ----------
        candidate : Candidate
            A Freesound candidate (``extra["freesound_id"]``).
        query : str
            The object's search term (decides which taxonomy kinds it asks for).
        role : str, optional
            The object's role; its strictest filter is used, then the taxonomy filter alone.
        """
        sound_id = candidate.extra.get("freesound_id") if candidate.extra else None
        if sound_id is None:
            raise SourceError(f"{candidate.name!r} is not a Freesound sound; 'more like this' needs one")
        filters = self.filters_for(query, role)
        key = self._search_key("similar", str(sound_id), n, filters)
        cached = self._cached(key)
        if cached is not None:
            return cached
        records: list[dict] = []
        seen: set = {int(sound_id)}
        for flt in dict.fromkeys([filters[0], filters[-1]]):
            found = self.client.similar(int(sound_id), filter=flt, max_results=n)
            records += [r for r in found if r["id"] not in seen and not seen.add(r["id"])]
            if len(records) >= n:
                break
        records = records[:n]
        self.cache.set_text(key, json.dumps(records), expire_s=self.search_ttl_s)
        return self._candidates(records)

    def _candidates(self, records: list) -> list[Candidate]:
        """Candidates from raw records; a malformed record (bad id, wrong types) is skipped with a note."""
        out = []
        for r in records:
            try:
                out.append(self._candidate(r))
            except (ValueError, TypeError, KeyError, AttributeError):
                self.notes.append(f"skipped a malformed Freesound record (id {str(r.get('id'))[:20]!r})"
                                  if isinstance(r, dict) else "skipped a malformed Freesound record")
        return out

    def _candidate(self, r: dict) -> Candidate:
        previews, dropped = clean_previews(r.get("previews"), self.origins)
        if dropped:
            self.notes.append(f"ignored {len(dropped)} preview address(es) of Freesound sound {int(r['id'])} "
                              "that are not on the sound source's own server")
        cand = candidate_from_record(r)
        return replace(cand, extra={**cand.extra, "previews": previews})

    def _preview_order(self, cand: Candidate) -> list[tuple[str, str]]:
        previews = cand.extra.get("previews") or {}
        q = self.preview_quality
        order = [f"preview-{q}-mp3", f"preview-{q}-ogg"]
        return [(k, previews[k]) for k in order if self.origins.media_url(previews.get(k))[0] is not None]

    def _preview_key(self, cand: Candidate, kind: str) -> str:
        return f"preview:{self._origin}:{cand.extra.get('freesound_id', cand.id)}:{kind}"

    def fetch(self, candidate: Candidate, *, duration_s: float = 0.0, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
        """Preview bytes (HQ MP3, else OGG), from the cache when present."""
        options = self._preview_order(candidate)
        if not options:
            raise SourceError(f"Freesound gave no preview for {candidate.name!r}")
        for kind, _ in options:
            data = self.cache.get_bytes(self._preview_key(candidate, kind))
            if data:
                return data
        error: Exception | None = None
        for kind, url in options:
            try:
                data = self.client.download(url, what=f"downloading {candidate.name!r}")
                decode(data, name=candidate.name, max_seconds=0.5)  # never cache what is not audio
            except (SourceUnavailableError, AuthError, RateLimitedError):
                raise
            except (SourceError, AudioError) as exc:
                error = exc
                continue
            self.cache.set_bytes(self._preview_key(candidate, kind), data)
            return data
        if isinstance(error, AudioError):
            raise AudioError(f"Freesound's preview of {candidate.name!r} is not playable audio: {error}")
        raise error or SourceError(f"no preview of {candidate.name!r} could be downloaded")

    def invalidate(self, candidate: Candidate) -> None:
        """Forget cached previews of ``candidate`` (after they failed to decode)."""
        for kind, _ in self._preview_order(candidate):
            self.cache.delete(self._preview_key(candidate, kind))

    def download_many(
        self,
        candidates: Sequence[Candidate],
        *,
        max_workers: int = 4,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> dict[str, bytes | Exception]:
        """Fetch several previews at once (bounded thread pool); errors are returned, not raised."""
        out: dict[str, bytes | Exception] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            # each worker sees the caller's current Budget (deadline, cancel)
            futures = {pool.submit(contextvars.copy_context().run, self.fetch, c): c for c in candidates}
            for done, fut in enumerate(concurrent.futures.as_completed(futures), start=1):
                cand = futures[fut]
                try:
                    out[cand.id] = fut.result()
                except SourceError as exc:
                    out[cand.id] = exc
                if progress:
                    progress(done, len(futures), cand.name)
        return out
