"""Image Extender: turn a photo into a stereo soundscape.

Data flows one way, one module per stage::

    image -> detection -> scene (placement) -> sources/selection -> audio -> masking/eq/optimise -> mixing -> export

Modules
-------
detection   load and validate images, run the YOLO detector (``Detector``, ``load_image``)
scene       place objects in the stereo field, importance, gain and search terms (``place_objects``)
sources     sound sources: built-in synthesis, local library, fallback chains (``open_source``)
freesound   Freesound APIv2 client and source: search, previews, rate limits, licences
filters     Freesound search filters (Solr) and named presets
cache       size-bounded disk cache of previews and searches (bytes and text only)
selection   rank candidates and choose one distinct sound per object (``choose_sounds``)
synth       procedural synthesis behind the built-in source
audio       decode, resample, fold to mono, fit to the scene, encode (``decode``, ``prepare_source``)
masking     directional masking matrices, masked fraction, role swaps, problematic vs intended masking
psychoacoustics  Bark scale, ear weighting, hearing floor, spreading, forward masking, activity
eq          masking-driven adaptive EQ (RBJ biquads)
optimise    differential-evolution refinement of gains and EQ depth
mixing      source levelling, pan law, gains, loudness normalisation, peak guarantee (``render_mix``)
export      mix.wav, stems, scene.json, ATTRIBUTION.txt, bundle.zip
pipeline    the chain stage by stage, ``render_image``, ``render_files`` and ``remix`` (from a saved plan)
cli         ``python -m imgext render|mix|remix|presets|labels``
settings    environment settings shared by every part
errors      the exception hierarchy (root ``ImgExtError``)
"""

__version__ = "0.1.0"

from .errors import ImgExtError, ParameterError  # noqa: E402

__all__ = ["__version__", "ImgExtError", "ParameterError"]
