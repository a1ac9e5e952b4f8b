"""Audio: decode, encode, resample, fit to a length, atomic file writes, BS.1770 loudness."""
