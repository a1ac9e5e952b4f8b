"""Output: what a render leaves behind.

Modules
-------
plan    the typed, versioned ``Plan`` (and its records) that owns ``scene.json``: written by
        ``Plan.to_json``, read back by ``read_plan`` for ``remix``
export  the files of a render (mix, stems, sources, credits, ``scene.json``) written so that nothing
        half-done looks complete, safe file names, the deterministic ZIP
"""
