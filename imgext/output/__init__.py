"""Output: the saved plan (scene.json), the files of a render and the ZIP."""
