"""Shared fixtures: the real detector model, the shared sounds and images, isolated settings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "yolov8n_int8.onnx"
SOUNDS = SHARED / "sounds"
IMAGES = SHARED / "images"

os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (../shared must sit beside the project)")
    return path


@pytest.fixture(scope="session")
def model_path() -> Path:
    return _need(MODEL)


@pytest.fixture(scope="session")
def sounds_dir() -> Path:
    return _need(SOUNDS)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return _need(IMAGES)


@pytest.fixture(scope="session")
def detector(model_path):
    from imgext.vision.detection import Detector

    return Detector(str(model_path))


@pytest.fixture(scope="session")
def bus_jpg() -> Path:
    import ultralytics

    return Path(ultralytics.ASSETS) / "bus.jpg"


@pytest.fixture(scope="session")
def zidane_jpg() -> Path:
    import ultralytics

    return Path(ultralytics.ASSETS) / "zidane.jpg"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own cache and data folders and no Freesound key from the environment."""
    monkeypatch.setenv("IMGEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IMGEXT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FREESOUND_API_KEY", raising=False)
    monkeypatch.delenv("IMGEXT_FREESOUND_URL", raising=False)
    monkeypatch.setenv("IMGEXT_YOLO_WEIGHTS", str(MODEL))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(440)
