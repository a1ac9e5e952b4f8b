"""Vision: the image in, objects out (loading, detection, placement in the stereo field)."""
