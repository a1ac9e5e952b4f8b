"""The export streams: WAVs made when written, the ZIP copied from the written files; --no-stems, --no-zip."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from imgext.audio.io import encode_wav
from imgext.output.export import OutputFile, build_zip, write_outputs
from tests.conftest import ROOT


def test_zip_streamed_from_disk_is_the_in_memory_zip(tmp_path, rng):
    made = []

    def wav() -> bytes:
        made.append("mix.wav")
        return encode_wav((0.1 * rng.standard_normal((2, 4410))).astype(np.float32), 44100, subtype="PCM_16")

    files = [OutputFile("mix.wav", wav), OutputFile("stems/00_a_dry.wav", b"RIFF-ish" * 1000),
             OutputFile("ATTRIBUTION.txt", b"credits\n"), OutputFile("scene.json", b'{"files": []}\n')]
    zip_path = write_outputs(tmp_path / "out", files)
    assert made == ["mix.wav"]  # made once, when written
    written = {f.path: (tmp_path / "out" / f.path).read_bytes() for f in files}
    assert zip_path.read_bytes() == build_zip([OutputFile(p, d) for p, d in written.items()])
    with zipfile.ZipFile(zip_path) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == written


def test_no_zip_writes_none(tmp_path):
    assert write_outputs(tmp_path / "o", [OutputFile("scene.json", b"{}")], zip_name=None) is None
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["scene.json"]


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_cli_no_stems_no_zip_and_remix(sounds_dir, tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "imgext", "mix", str(sounds_dir / "dog.mp3"), str(sounds_dir / "owl.mp3"),
           "--duration", "3", "--no-stems", "--no-zip", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    scene = json.loads((out / "scene.json").read_text())
    assert not (out / "stems").exists() and not (out / "bundle.zip").exists()
    assert not any(f.startswith("stems/") or f == "bundle.zip" for f in scene["files"])
    assert all(o["stem"] is None for o in scene["objects"])
    assert "x 2 stems" not in done.stdout.splitlines()[-1] and "bundle.zip" not in done.stdout.splitlines()[-1]
    # a folder without stems is still a plan: remix it, this time with stems and the ZIP
    again = subprocess.run([sys.executable, "-m", "imgext", "remix", str(out), "--out", str(tmp_path / "r")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "r" / "bundle.zip").is_file()
    assert len([p for p in (tmp_path / "r" / "stems").iterdir() if p.name != "reverb.wav"]) == 4
    assert (tmp_path / "r" / "mix.wav").read_bytes() == (out / "mix.wav").read_bytes()


@pytest.mark.slow  # a whole render in a subprocess
def test_cli_render_no_stems_no_zip(bus_jpg, tmp_path):
    """``render`` honours --no-stems / --no-zip too (issue 15: a long scene's stems take most of the disk)."""
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "imgext", "render", str(bus_jpg), "--source", "builtin", "--duration", "2",
           "--no-stems", "--no-zip", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    scene = json.loads((out / "scene.json").read_text())
    assert not (out / "stems").exists() and not (out / "bundle.zip").exists()
    assert (out / "mix.wav").is_file() and "mix.wav" in scene["files"]
    assert not any(f.startswith("stems/") or f == "bundle.zip" for f in scene["files"])
    assert all(o.get("stem") is None for o in scene["objects"])
