"""Mix: the pure stereo mix (pan law, gains, loudness, ceiling) and the Mixer that caches the engine for one track set."""
