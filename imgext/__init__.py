"""Image Extender: turn a photo into a stereo soundscape.

Data flows one way, one module per stage::

    image -> detection -> scene (placement) -> sources/selection -> audio -> masking/eq/optimise -> mixing -> export

Modules
-------
detection   load and validate images, run the YOLO detector (``Detector``, ``load_image``)
scene       place objects in the stereo field, importance, gain and search terms (``place_objects``)
sources     sound sources: built-in synthesis, local library, Freesound (``open_source``)
selection   rank candidates and choose one distinct sound per object (``choose_sounds``)
synth       procedural synthesis behind the built-in source
audio       decode, resample, fold to mono, fit to the scene, encode (``decode``, ``prepare_source``)
masking     directional masking matrices, masked fraction, role swaps, problematic vs intended masking
psychoacoustics  Bark scale, ear weighting, hearing floor, spreading, forward masking, activity
eq          masking-driven adaptive EQ (RBJ biquads)
optimise    differential-evolution refinement of gains and EQ depth
mixing      pan law, gains, loudness normalisation, peak guarantee (``render_mix``)
export      mix.wav, stems, scene.json, ATTRIBUTION.txt, bundle.zip
pipeline    the whole chain as one call (``render_image``)
settings    environment settings shared by every part
errors      the exception hierarchy (root ``ImgExtError``)
"""

__version__ = "0.1.0"

from .errors import ImgExtError, ParameterError  # noqa: E402

__all__ = ["__version__", "ImgExtError", "ParameterError"]
