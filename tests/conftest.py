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


def pytest_configure(config):
    """The fast loop (``-m "not slow"``) runs fewer property-based examples (:mod:`tests.quick`)."""
    if "not slow" in (config.option.markexpr or ""):
        os.environ.setdefault("IMGEXT_TEST_QUICK", "1")

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


_EXCLUDED = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}


def _repo_files() -> set[str]:
    """Every file under the repository, except caches and the environment."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _EXCLUDED]
        found |= {os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames if not f.endswith(".pyc")}
    return found


def pytest_sessionstart(session):
    session.config._imgext_files_before = _repo_files()


def pytest_sessionfinish(session, exitstatus):
    """The suite must write nothing into the repository (tests use tmp_path; artifacts go to the temp folder)."""
    before = getattr(session.config, "_imgext_files_before", None)
    if before is None:
        return
    new = sorted(_repo_files() - before)
    if new:
        print(f"\nERROR: the tests wrote {len(new)} file(s) into the repository: {new[:10]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(440)
