"""``python -m tests.concurrent_render [--pin]``: render photos one at a time, then all at once on threads, as the
app's server does; print a JSON list, per photo, of the files whose bytes differ between the two ways.

Run in its own process by ``tests/test_determinism.py``, because :func:`imgext.mix.mixer.pin_one_blas_thread`
holds for the rest of the process. Renders as the load bench's references do (``bench/load.py``: the first four
of its photos and seeds, the Freesound-compatible test server with built-in sounds filling in, the app's ZIP with
both mixes and FLAC stems).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import threading
from pathlib import Path

from imgext.mix.mixer import pin_one_blas_thread
from tests.freesound_server import FreesoundServer
from tests.test_load import bench_load

KEY = "concurrent-key"


def main() -> None:
    if "--pin" in sys.argv:
        pin_one_blas_thread()
    load = bench_load()
    jobs = load.make_jobs(4)
    with FreesoundServer(api_key=KEY) as fs, tempfile.TemporaryDirectory() as tmp:

        def render(job, out: dict, where: str) -> None:
            renderer = load.ReferenceRenderer(fs.base_url, KEY, Path(tmp) / f"{where}-{job.index}")
            out[job.index] = {name: hashlib.sha256(data).hexdigest() for name, data in renderer.render(job).members.items()
                              if name.endswith((".wav", ".flac"))}

        alone: dict = {}
        for job in jobs:
            render(job, alone, "alone")
        together: dict = {}
        threads = [threading.Thread(target=render, args=(job, together, "together")) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(json.dumps([sorted(k for k in alone[i] if alone[i][k] != together.get(i, {}).get(k)) for i in alone]))


if __name__ == "__main__":
    main()
