"""The optimiser's search shrinks with the number of tracks, so 32 tracks cost about what 8 do."""

from __future__ import annotations

import numpy as np

from imgext.composition.tracks import Tracks
from imgext.mix.mixer import Mixer, search_budget
from imgext.options import MixSettings


def test_up_to_eight_tracks_the_search_is_unchanged():
    assert search_budget(2) == search_budget(8) == {"popsize": 6, "maxiter": 40, "pool_s": 1.0}


def test_operations_stay_about_flat_in_tracks():
    def operations(n: int) -> float:  # members x generations x one evaluation (n^2 pairs x frames)
        b = search_budget(n)
        return b["popsize"] * 2 * n * b["maxiter"] * n**2 / b["pool_s"]

    assert operations(32) <= 1.5 * operations(8)
    assert operations(16) <= 1.5 * operations(8)


def test_sixteen_tracks_optimise_within_the_budget(rng):
    sr, n = 16000, 16
    t = np.arange(4 * sr) / sr
    audio = np.stack([(0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (200 + 90 * k) * t))
                      for k in range(n)]).astype(np.float32)
    tracks = Tracks(audio=audio, names=[f"t{k}" for k in range(n)], object_indices=list(range(n)),
                    pans=np.linspace(-1, 1, n), importance=np.linspace(1.0, 0.1, n), volume_db=np.zeros(n),
                    sample_rate=sr)
    extra = {"time_aware": False} if "time_aware" in MixSettings.__dataclass_fields__ else {}
    outcome = Mixer(tracks).render(MixSettings(duration_s=4.0, sample_rate=sr, optimise=True, **extra))
    opt = outcome.optimisation
    b = search_budget(n)
    assert opt is not None and opt.cost_after <= opt.cost_before
    assert opt.n_evaluations <= b["popsize"] * 2 * n * (b["maxiter"] + 1) + 1
