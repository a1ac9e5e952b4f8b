"""Image Extender: turn a photo into a spatial soundscape.

Data flows one way, one folder per stage; a module imports only from its own
stage or earlier ones (``errors``, ``settings`` and ``options`` are shared by all)::

    image -> vision -> sounds -> composition (tracks, arrangement) -> masking -> engine -> mix -> output
                                                                    -> project -> pipeline -> cli

(``audio`` is a utility of sounds and every later stage; ``tests/test_architecture.py`` checks the order.)

Folders
-------
vision       load and validate images, run the detector, place objects in the stereo field
sounds       sound sources (Freesound, local library, built-in synthesiser), ranking and selection,
             search filters and presets, the disk cache
audio        decode, resample, fit to the scene, encode, atomic writes, BS.1770 loudness
composition  chosen sounds fetched, fitted and levelled into tracks; their arrangement in time and space
masking      the psychoacoustic model and the masking analysis built on it
engine       adaptive EQ design and filtering, optimisation of gains and EQ depth
mix          the pure stereo mix and the ``Mixer`` that caches the engine for one track set
output       the saved plan (``scene.json``), the files of a render, the ZIP

Modules
-------
options      settings dataclasses: the one owner of every default, range and help text
settings     environment settings shared by every part (API key, URLs, cache folder)
errors       the exception hierarchy (root ``ImgExtError``)
budget       ``Budget``: one deadline and cancel flag for every network wait of a task
project      one session's work with no UI (detect, choose, fetch, mix, export), cached by content;
             the app's pages drive it
pipeline     ``render_image``, ``render_files``, ``remix``: the whole chain as the command line runs it
batch        many photos, resumable: manifest, settings fingerprint, local processes or Ray
cli          ``python -m imgext render|batch|mix|remix|presets|labels``
"""

__version__ = "0.2.0"

from imgext.errors import ImgExtError, ParameterError  # noqa: E402

__all__ = ["__version__", "ImgExtError", "ParameterError"]
