"""Settings shared by every part of Image Extender, read from the environment.

=============================  ==========================================================
Variable                       Meaning
=============================  ==========================================================
``IMGEXT_YOLO_WEIGHTS``        Detector weights (``.pt`` or ``.onnx``). Unset: Ultralytics'
                               default nano model, downloaded on first use.
``FREESOUND_API_KEY``          Freesound API key (the app also reads Streamlit secrets).
``IMGEXT_FREESOUND_URL``       Freesound API root, default ``https://freesound.org/apiv2``.
``IMGEXT_CACHE_DIR``           Disk cache folder, default ``$XDG_CACHE_HOME/imgext``.
``IMGEXT_CACHE_SIZE_MB``       Disk cache size bound in MB, default 1024.
``IMGEXT_DATA_DIR``            Data folder (filter presets), default ``$XDG_DATA_HOME/imgext``.
``IMGEXT_SEARCH_DEADLINE_S``   Total time one Freesound search request may take (connect
                               to last byte), in seconds, default 20.
``IMGEXT_PREVIEW_DEADLINE_S``  Total time one preview download may take, default 60.
``IMGEXT_RENDER_BUDGET_S``     Time a render (or "Find sounds") may take; searches and
                               downloads stop in time for it to finish with what it has,
                               default 90.
``IMGEXT_HOSTED``              ``1``: public demo mode (shared presets read-only, cache
                               clearing needs ``IMGEXT_ADMIN_PASSWORD``, tighter bounds).
``IMGEXT_ADMIN_PASSWORD``      Password that unlocks those in hosted mode (secrets only).
``IMGEXT_HEAVY_WORKERS``       Heavy steps (detect, find sounds, mix, ZIP) run at once, default 2.
``IMGEXT_LABELS``              Label table overrides (JSON file), for the app and the CLI.
``ORT_DISABLE_TELEMETRY``      ONNX Runtime's telemetry opt-out: set to ``1`` before ONNX Runtime
                               is imported unless already set (:mod:`imgext.vision.onnx_detector`).
=============================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgext.errors import ParameterError

__all__ = ["Settings", "load_settings", "DEFAULT_FREESOUND_URL"]

DEFAULT_FREESOUND_URL = "https://freesound.org/apiv2"
DEFAULT_CACHE_SIZE_MB = 1024
DEFAULT_SEARCH_DEADLINE_S = 20.0
DEFAULT_PREVIEW_DEADLINE_S = 60.0
DEFAULT_RENDER_BUDGET_S = 90.0


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    base = env.get(var) or str(Path(env.get("HOME", str(Path.home()))) / fallback)
    return Path(base) / "imgext"


@dataclass(frozen=True)
class Settings:
    """Process-wide settings.

    Attributes
    ----------
    yolo_weights : str or None
        Path (or Ultralytics model name) of the detector weights; ``None`` means
        Ultralytics' default nano model.
    freesound_api_key : str or None
        The key; never printed (excluded from ``repr``).
    freesound_url : str
        API root without a trailing slash.
    cache_dir : pathlib.Path
        Disk cache folder.
    cache_size_bytes : int
        Upper bound of the disk cache, in bytes.
    data_dir : pathlib.Path
        Folder for user data (filter presets).
    search_deadline_s : float
        Total time one Freesound search request may take (connect to last byte), in seconds.
    preview_deadline_s : float
        Total time one preview download may take, in seconds.
    render_budget_s : float
        Time a whole render may take, in seconds: searches and downloads stop in time for the
        render to finish with what it has (a fallback sound, or no sound with the reason).
    labels_file : str or None
        JSON file of label table overrides (:meth:`imgext.vision.placement.LabelMap.with_file`).
    """

    yolo_weights: str | None = None
    freesound_api_key: str | None = field(default=None, repr=False)
    freesound_url: str = DEFAULT_FREESOUND_URL
    cache_dir: Path = field(default_factory=lambda: _xdg(os.environ, "XDG_CACHE_HOME", ".cache"))
    cache_size_bytes: int = DEFAULT_CACHE_SIZE_MB * 1024 * 1024
    data_dir: Path = field(default_factory=lambda: _xdg(os.environ, "XDG_DATA_HOME", ".local/share"))
    search_deadline_s: float = DEFAULT_SEARCH_DEADLINE_S
    preview_deadline_s: float = DEFAULT_PREVIEW_DEADLINE_S
    render_budget_s: float = DEFAULT_RENDER_BUDGET_S
    hosted: bool = False
    admin_password: str | None = field(default=None, repr=False)
    heavy_workers: int = 2
    labels_file: str | None = None

    @property
    def max_presets_per_session(self) -> int:
        """A visitor's own presets kept in their session (hosted mode)."""
        return 20

    @property
    def max_upload_bytes(self) -> int:
        """Largest photo accepted, in bytes (hosted: 10 MB; local: 50 MB)."""
        return (10 if self.hosted else 50) * 1024 * 1024

    @property
    def max_scene_s(self) -> int:
        """Longest scene a visitor may ask for, in seconds (hosted: 60; local: 120)."""
        return 60 if self.hosted else 120


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from environment variables.

    Parameters
    ----------
    env : mapping, optional
        Defaults to ``os.environ``.

    Raises
    ------
    ParameterError
        If ``IMGEXT_CACHE_SIZE_MB`` or a deadline/budget is not a positive number.
    """
    env = os.environ if env is None else env
    size_text = env.get("IMGEXT_CACHE_SIZE_MB", "").strip()
    try:
        size_mb = float(size_text) if size_text else float(DEFAULT_CACHE_SIZE_MB)
    except ValueError:
        raise ParameterError(f"IMGEXT_CACHE_SIZE_MB={size_text!r} must be a number of megabytes") from None
    if not size_mb > 0:
        raise ParameterError(f"IMGEXT_CACHE_SIZE_MB={size_text!r} must be positive")
    key = (env.get("FREESOUND_API_KEY") or "").strip() or None
    url = (env.get("IMGEXT_FREESOUND_URL") or "").strip() or DEFAULT_FREESOUND_URL
    hosted = (env.get("IMGEXT_HOSTED") or "").strip().lower() in ("1", "true", "yes", "on")
    workers_text = (env.get("IMGEXT_HEAVY_WORKERS") or "").strip()
    try:
        workers = int(workers_text) if workers_text else 2
    except ValueError:
        raise ParameterError(f"IMGEXT_HEAVY_WORKERS={workers_text!r} must be a whole number") from None
    if not 1 <= workers <= 64:
        raise ParameterError(f"IMGEXT_HEAVY_WORKERS={workers_text!r} must lie between 1 and 64")
    cache_dir = env.get("IMGEXT_CACHE_DIR")
    data_dir = env.get("IMGEXT_DATA_DIR")
    return Settings(
        yolo_weights=(env.get("IMGEXT_YOLO_WEIGHTS") or "").strip() or None,
        freesound_api_key=key,
        freesound_url=url.rstrip("/"),
        cache_dir=Path(cache_dir).expanduser() if cache_dir else _xdg(env, "XDG_CACHE_HOME", ".cache"),
        cache_size_bytes=int(size_mb * 1024 * 1024),
        data_dir=Path(data_dir).expanduser() if data_dir else _xdg(env, "XDG_DATA_HOME", ".local/share"),
        search_deadline_s=_seconds(env, "IMGEXT_SEARCH_DEADLINE_S", DEFAULT_SEARCH_DEADLINE_S),
        preview_deadline_s=_seconds(env, "IMGEXT_PREVIEW_DEADLINE_S", DEFAULT_PREVIEW_DEADLINE_S),
        render_budget_s=_seconds(env, "IMGEXT_RENDER_BUDGET_S", DEFAULT_RENDER_BUDGET_S),
        hosted=hosted,
        admin_password=(env.get("IMGEXT_ADMIN_PASSWORD") or "").strip() or None,
        heavy_workers=workers,
        labels_file=(env.get("IMGEXT_LABELS") or "").strip() or None,
    )


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    """A positive, finite number of seconds from ``env[var]`` (default when unset or empty)."""
    text = (env.get(var) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{var}={text!r} must be a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ParameterError(f"{var}={text!r} must be a positive number of seconds")
    return value
