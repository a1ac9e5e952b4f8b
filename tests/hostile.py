"""A hostile Freesound-compatible server: the test server with attacker-controlled records.

:class:`HostileServer` is :class:`tests.freesound_server.FreesoundServer` whose
rendered records are overwritten by :attr:`HostileServer.overrides` (sound id ->
fields), so searches, ranking and genuine previews still work while names,
links and preview addresses are whatever an attacker would send.
:func:`hostile_previews` builds the preview values tried: server paths
(existing and missing), ``file:``, ``data:``, ``javascript:``, foreign hosts,
look-alike hosts and non-strings.
"""

from __future__ import annotations

import base64
from pathlib import Path

from tests.freesound_server import FreesoundServer

ROOT = Path(__file__).resolve().parents[1]

ATTACK_NAME = ("![](http://tracker.example/p.gif) [Claim your prize](https://phish.example/login) "
               "www.evil.example <img src=x onerror=alert(1)> :material/warning: :red[alarm] $x^2$ "
               "mail@evil.example https://phish.example/raw")
"""A sound name that, rendered as Markdown, would load a tracker and show foreign links."""


def hostile_previews(secret_files: list[Path]) -> list[object]:
    """Every preview value an attacker might send; ``secret_files`` are paths that exist on the server."""
    values: list[object] = []
    for f in secret_files:
        values += [str(f), f"file://{f}", f"file:{f}"]
    values += [
        "/etc/passwd", "/proc/self/environ", "/nonexistent/file.mp3", "../../../../etc/passwd",
        ".streamlit/config.toml", "file:///etc/passwd", "FILE:///etc/passwd",
        "data:audio/mpeg;base64," + base64.b64encode(b"ID3fake").decode(),
        "javascript:alert(document.cookie)", "JaVaScRiPt:alert(1)", "vbscript:msgbox(1)",
        "http://evil.example/p.mp3", "https://cdn.freesound.org.evil.example/p.mp3",
        "https://cdn.freesound.org@evil.example/p.mp3", "//evil.example/p.mp3", "http://169.254.169.254/latest",
        "https://evil.example\\@cdn.freesound.org/p.mp3", " http://evil.example/p.mp3", "http://127.0.0.1:1/x.mp3",
        12345, ["/etc/passwd"], {"url": "/etc/passwd"}, None, "",
    ]
    return values


class HostileServer(FreesoundServer):
    """The Freesound test server, with fields of chosen records replaced as rendered.

    Attributes
    ----------
    overrides : dict
        Sound id -> fields replacing the rendered ones (``name``, ``url``, ``previews`` ...).
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.overrides: dict[int, dict] = {}

    def _render(self, rec: dict, wanted, origin: str, score=None) -> dict:
        full = super()._render(rec, None, origin, score)
        extra = self.overrides.get(rec["id"], {})
        if "previews" in extra and isinstance(extra["previews"], dict):
            full["previews"] = {**full["previews"], **extra["previews"]}
            extra = {k: v for k, v in extra.items() if k != "previews"}
        full.update(extra)
        return full if wanted is None else {k: full[k] for k in wanted if k in full}

    def poison(self, values: list[object], *, keep_every: int = 3) -> None:
        """Give every record an attacker's name and link, and hostile previews, cycling through ``values``.

        Every ``keep_every``-th record keeps its genuine HQ previews (so some sounds still play); all others
        get a hostile value in each preview field.
        """
        self.overrides.clear()
        for i, rec in enumerate(self.catalogue):
            bad = values[i % len(values)]
            fields = {"name": f"{ATTACK_NAME} #{i}", "url": "https://phish.example/sound",
                      "username": "[admin](https://phish.example) www.evil.example"}
            if i % keep_every == 0:
                fields["previews"] = {"preview-lq-mp3": bad, "preview-lq-ogg": bad}
            else:
                fields["previews"] = {k: bad for k in ("preview-hq-mp3", "preview-hq-ogg", "preview-lq-mp3",
                                                        "preview-lq-ogg")}
            self.overrides[rec["id"]] = fields
        self.overrides[self.catalogue[-1]["id"]]["previews"] = "/etc/passwd"  # not even a dict
