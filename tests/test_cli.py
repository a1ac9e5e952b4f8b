"""The command line: help, one-line errors, exit codes, summaries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: subprocesses, servers or the whole app; skipped by the fast loop

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None, timeout=300):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "imgext", *args], cwd=ROOT, capture_output=True, text=True,
                          env=e, timeout=timeout)


def test_help_documents_everything():
    r = run("--help")
    assert r.returncode == 0
    for word in ["render", "mix", "remix", "presets", "IMGEXT_YOLO_WEIGHTS", "FREESOUND_API_KEY", "IMGEXT_FREESOUND_URL", "IMGEXT_CACHE_DIR"]:
        assert word in r.stdout
    r = run("render", "--help")
    for opt in ["--out", "--source", "--duration", "--seed", "--attenuation-db", "--loudness", "--conf",
                "--eq-strength", "--max-cut-db", "--optimize", "--preset", "--candidates"]:
        assert opt in r.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["render", "missing.jpg", "--out", "OUT"], "image not found"),
        (["render", "TEXT", "--out", "OUT"], "not an image"),
        (["render", "TEXT", "--out", "OUT", "--duration", "0"], "outside 1..600"),
        (["render", "TEXT", "--out", "OUT", "--source", "freesound"], "API key"),
        (["render", "TEXT", "--out", "OUT", "--source", "local:/nonexistent"], "not found"),
        (["mix", "nope.wav", "--out", "OUT"], "not found"),
        (["mix", "BAD", "--out", "OUT"], "could not be decoded"),
        (["mix", "TEXT", "TEXT", "--out", "OUT", "--pan", "0"], "once per file"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    text = tmp_path / "photo.jpg"
    text.write_text("not an image")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk" * 10)
    args = [str(text) if a == "TEXT" else str(bad) if a == "BAD" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    r = run(*args)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("imgext: error") or "error:" in line]) >= 1


def test_render_prints_a_summary(tmp_path, bus_jpg):
    r = run("render", str(bus_jpg), "--out", str(tmp_path / "o"), "--duration", "4", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert "objects:" in r.stdout and "LUFS" in r.stdout and "peak" in r.stdout and "time:" in r.stdout
    assert "relevance 0." in r.stdout or "relevance 1." in r.stdout  # why each sound was chosen
    assert (tmp_path / "o" / "bundle.zip").is_file()


def test_remix_command(tmp_path, bus_jpg):
    out = tmp_path / "o"
    assert run("render", str(bus_jpg), "--out", str(out), "--duration", "3").returncode == 0
    r = run("remix", str(out), "--out", str(tmp_path / "again"), "--eq-strength", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    import json

    scene = json.loads(r.stdout)
    assert scene["settings"]["eq_strength"] == 0.5 and scene["settings"]["duration_s"] == 3.0
    r = run("remix", str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and "no scene.json" in r.stderr and "Traceback" not in r.stderr
