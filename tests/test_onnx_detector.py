"""The ONNX Runtime detector: same boxes as Ultralytics, names from the metadata, no torch for .onnx weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imgext.vision.onnx_detector import OnnxYolo, letterbox, nms, read_names
from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_same_boxes_as_ultralytics(model_path, name):
    import ultralytics

    picture = Image.open(os.path.join(ultralytics.ASSETS, name)).convert("RGB")
    ours = OnnxYolo(str(model_path)).predict(np.asarray(picture), conf=0.25)
    ref = ultralytics.YOLO(str(model_path), task="detect").predict(picture, conf=0.25, verbose=False)[0].boxes
    ref_xyxy = ref.xyxy.cpu().numpy()
    assert len(ours.xyxy) == len(ref_xyxy) >= 3
    assert np.max(np.abs(ours.xyxy - ref_xyxy)) <= 1.0  # pixels
    np.testing.assert_array_equal(ours.classes, ref.cls.cpu().numpy().astype(int))
    np.testing.assert_allclose(ours.scores, ref.conf.cpu().numpy(), atol=1e-3)


def test_names_come_from_the_model_metadata(model_path):
    det = OnnxYolo(str(model_path))
    assert len(det.names) == 80 and det.names[0] == "person" and det.names[5] == "bus" and det.names[27] == "tie"
    assert det.input_size == (640, 640)


def test_read_names_evaluates_no_code():
    assert read_names({"names": "{0: 'cat', 1: 'dog'}"}) == {0: "cat", 1: "dog"}
    assert read_names({"names": "['cat', 'dog']"}) == {0: "cat", 1: "dog"}
    assert read_names({"names": "__import__('os').system('true')"}) == {}
    assert read_names({}) == {}


def test_letterbox_centres_on_grey():
    rgb = np.zeros((100, 200, 3), dtype=np.uint8)
    padded, gx, gy, px, py = letterbox(rgb, (640, 640))
    assert padded.shape == (640, 640, 3) and gx == gy == 3.2 and (px, py) == (0, 160)
    assert np.all(padded[:160] == 114) and np.all(padded[160:480] == 0) and np.all(padded[480:] == 114)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.5, 0.7], dtype=np.float32)
    # IoU(0, 1) = 81 / 119 = 0.68, IoU(1, 3) = 72 / 118 = 0.61, IoU(0, 3) = 0.9
    np.testing.assert_array_equal(nms(boxes, scores, 0.7), [1, 0, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 2])


def test_detector_finds_the_bus_without_torch(model_path, bus_jpg):
    """An .onnx render path never imports torch or Ultralytics (start-up seconds and ~800 MB)."""
    code = (
        "import sys, json\n"
        "from imgext.vision.detection import Detector, load_image\n"
        f"d = Detector({str(model_path)!r})\n"
        f"pic, _ = load_image({str(bus_jpg)!r})\n"
        "labels = [x.label for x in d.detect(pic)]\n"
        "print(json.dumps({'labels': labels, 'mods': [m for m in ('torch', 'ultralytics', 'torchvision') if m in sys.modules]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["mods"] == []
    assert "bus" in result["labels"] and result["labels"].count("person") >= 3


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_one_shot_load_finds_the_same_boxes(model_path, name):
    """Without graph optimisation, on one thread (the CLI's load): the very boxes, classes and scores."""
    import importlib.util

    assets = os.path.join(os.path.dirname(importlib.util.find_spec("ultralytics").origin), "assets")
    picture = np.asarray(Image.open(os.path.join(assets, name)).convert("RGB"))
    full = OnnxYolo(str(model_path)).predict(picture, conf=0.25)
    light = OnnxYolo(str(model_path), threads=1, optimize=False).predict(picture, conf=0.25)
    assert len(full.xyxy) >= 3
    np.testing.assert_array_equal(light.xyxy, full.xyxy)
    np.testing.assert_array_equal(light.classes, full.classes)
    np.testing.assert_array_equal(light.scores, full.scores)


def test_onnx_runtime_telemetry_is_off_and_writes_nothing(model_path, bus_jpg, tmp_path):
    """ONNX Runtime's own telemetry (a session file in TMPDIR, a device id and an event database under
    ~/.cache/Microsoft) stays off: a server detecting for its visitors does not report them."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    code = (
        "import os\n"
        "from imgext.vision.detection import Detector, load_image\n"
        f"d = Detector({str(model_path)!r})\n"
        f"pic, _ = load_image({str(bus_jpg)!r})\n"
        "d.detect(pic)\n"
        "print(os.environ.get('ORT_DISABLE_TELEMETRY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "1"
    assert sorted(p.name for p in tmp.rglob("*")) == []
    assert not (home / ".cache" / "Microsoft").exists()
