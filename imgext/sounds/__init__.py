"""Sounds: where each object's sound comes from (Freesound, a local library, the built-in synthesiser), how candidates are ranked and chosen, search filters and presets, the disk cache."""
