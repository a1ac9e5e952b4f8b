"""Masking: the one psychoacoustic model (Bark bands, spreading, activity) and the masking analysis built on it."""
