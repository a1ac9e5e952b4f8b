"""Settings shared by every part of Image Extender, read from the environment.

=========================  ==========================================================
Variable                   Meaning
=========================  ==========================================================
``IMGEXT_YOLO_WEIGHTS``    Detector weights (``.pt`` or ``.onnx``). Unset: Ultralytics'
                           default nano model, downloaded on first use.
``FREESOUND_API_KEY``      Freesound API key (the app also reads Streamlit secrets).
``IMGEXT_FREESOUND_URL``   Freesound API root, default ``https://freesound.org/apiv2``.
``IMGEXT_CACHE_DIR``       Disk cache folder, default ``$XDG_CACHE_HOME/imgext``.
``IMGEXT_CACHE_SIZE_MB``   Disk cache size bound in MB, default 1024.
``IMGEXT_DATA_DIR``        Data folder (filter presets), default ``$XDG_DATA_HOME/imgext``.
=========================  ==========================================================
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
    """

    yolo_weights: str | None = None
    freesound_api_key: str | None = field(default=None, repr=False)
    freesound_url: str = DEFAULT_FREESOUND_URL
    cache_dir: Path = field(default_factory=lambda: _xdg(os.environ, "XDG_CACHE_HOME", ".cache"))
    cache_size_bytes: int = DEFAULT_CACHE_SIZE_MB * 1024 * 1024
    data_dir: Path = field(default_factory=lambda: _xdg(os.environ, "XDG_DATA_HOME", ".local/share"))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from environment variables.

    Parameters
    ----------
    env : mapping, optional
        Defaults to ``os.environ``.

    Raises
    ------
    ParameterError
        If ``IMGEXT_CACHE_SIZE_MB`` is not a positive number.
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
    cache_dir = env.get("IMGEXT_CACHE_DIR")
    data_dir = env.get("IMGEXT_DATA_DIR")
    return Settings(
        yolo_weights=(env.get("IMGEXT_YOLO_WEIGHTS") or "").strip() or None,
        freesound_api_key=key,
        freesound_url=url.rstrip("/"),
        cache_dir=Path(cache_dir).expanduser() if cache_dir else _xdg(env, "XDG_CACHE_HOME", ".cache"),
        cache_size_bytes=int(size_mb * 1024 * 1024),
        data_dir=Path(data_dir).expanduser() if data_dir else _xdg(env, "XDG_DATA_HOME", ".local/share"),
    )
