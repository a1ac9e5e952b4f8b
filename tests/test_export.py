"""Export: safe names, unique names, deterministic ZIP, attribution lines, stale files."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from imgext.errors import ParameterError
from imgext.output.export import (
    OutputFile,
    attribution_line,
    build_zip,
    remove_stale,
    safe_filename,
    unique_names,
    write_outputs,
)
from imgext.output.plan import json_ready

NASTY = [
    "../../etc/passwd",
    "/absolute/path.mp3",
    'quote "me" please.wav',
    "back\\slash.wav",
    "ctrl\x00char\x1b[31m.mp3",
    "Grenouille près de l'étang — nuit.mp3",
    "..",
    "",
    "CON.wav",
    "x" * 400 + ".mp3",
    "dir/sub/file.ogg",
    "\u202eevil.mp3",
]


@pytest.mark.parametrize("name", NASTY)
def test_safe_filename_never_escapes(name):
    safe = safe_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and ".." not in safe
    assert not safe.startswith(".") and len(safe) <= 80
    assert all(ord(c) >= 32 and c != "\x7f" for c in safe)
    assert "\u202e" not in safe


def test_safe_filename_keeps_readable_text():
    assert safe_filename("Grenouille près de l'étang.mp3") == "Grenouille_près_de_l'étang.mp3"
    assert safe_filename("dog bark 02.wav") == "dog_bark_02.wav"
    assert safe_filename("x" * 400 + ".mp3").endswith(".mp3")


def test_unique_names_case_insensitive():
    assert unique_names(["a.wav", "A.wav", "a.wav", "b"]) == ["a.wav", "A-2.wav", "a-3.wav", "b"]


def test_zip_is_deterministic_and_sanitised():
    files = [OutputFile("mix.wav", b"RIFF...."), OutputFile(f"sources/{safe_filename(NASTY[0])}", b"x")]
    a, b = build_zip(files), build_zip(list(reversed(files)))
    assert a == b
    names = zipfile.ZipFile(io.BytesIO(a)).namelist()
    assert names == sorted(names) and all(not n.startswith("/") and ".." not in n for n in names)
    with pytest.raises(ParameterError):
        build_zip([OutputFile("../evil.txt", b"")])
    with pytest.raises(ParameterError):
        build_zip([OutputFile("/abs.txt", b"")])


def test_attribution_lines():
    fs = {"name": "Dog bark", "author": "jo", "url": "https://freesound.org/s/1/", "license": "CC BY 4.0",
          "license_url": "http://creativecommons.org/licenses/by/4.0/", "source": "freesound"}
    assert attribution_line(fs) == (
        "Dog bark by jo -- https://freesound.org/s/1/ -- License: CC BY 4.0 (http://creativecommons.org/licenses/by/4.0/)"
    )
    nc = dict(fs, license="CC BY-NC 3.0", commercial_ok=False)
    assert attribution_line(nc).endswith("[NON-COMMERCIAL use only]")
    assert "synthetic" in attribution_line({"name": "wind #1", "synthetic": True})
    evil = dict(fs, name="bad\nline\x00here")
    assert "\n" not in attribution_line(evil)


def test_json_ready_drops_non_finite():
    import numpy as np

    assert json_ready({"a": float("-inf"), "b": np.float32(1.5), "c": (1, 2), "d": np.arange(2)}) == {
        "a": None, "b": 1.5, "c": [1, 2], "d": [0, 1]
    }


def test_write_outputs_is_atomic_and_removes_only_listed_stale_files(tmp_path):
    out = tmp_path / "out"
    first = [OutputFile("stems/00_a.wav", b"1"), OutputFile("stems/01_b.wav", b"2"),
             OutputFile("scene.json", json.dumps({"files": ["stems/00_a.wav", "stems/01_b.wav"]}).encode())]
    write_outputs(out, first)
    (out / "stems" / "mine.txt").write_text("user file")
    removed = remove_stale(out, ["stems/00_a.wav", "scene.json"])
    assert removed == ["stems/01_b.wav"]
    assert (out / "stems" / "mine.txt").exists() and (out / "stems" / "00_a.wav").exists()
    assert not list(out.rglob("*.part"))
    assert zipfile.ZipFile(out / "bundle.zip").namelist() == ["scene.json", "stems/00_a.wav", "stems/01_b.wav"]
