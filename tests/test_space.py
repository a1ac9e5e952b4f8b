"""Distance, room and headphones: the pure parts (imgext.vision.distance, imgext.mix.space, imgext.mix.binaural)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from imgext.errors import ParameterError
from imgext.mix import binaural, space
from imgext.vision import distance as dist

SR = 44100


def _hrtf():
    try:
        return binaural.load_hrtf(SR)
    except binaural.HrtfUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI installs libmysofa1: a missing HRTF there is a failure, not a skip
        pytest.skip(str(exc))


def _lag_ms(stereo: np.ndarray, max_lag: int = 60) -> float:
    """Lag (ms) of the right ear behind the left from the cross-correlation; > 0 = left leads."""
    c = np.fft.irfft(np.fft.rfft(stereo[1]) * np.conj(np.fft.rfft(stereo[0])), n=stereo.shape[1])
    window = np.r_[c[-max_lag:], c[: max_lag + 1]]
    return (int(np.argmax(window)) - max_lag) / SR * 1e3


# -- distance from the picture ------------------------------------------------------------------------


def test_a_box_half_as_tall_is_twice_as_far():
    near = dist.estimate_distance_m("person", (0.40, 0.10, 0.50, 0.90), aspect=16 / 9)
    far = dist.estimate_distance_m("person", (0.40, 0.30, 0.45, 0.70), aspect=16 / 9)
    assert far == pytest.approx(2 * near, rel=0.01)


def test_pinhole_distance_matches_the_formula():
    # 60 degrees horizontal, 16:9: vertical fov = 2 atan(tan 30 / (16/9)) = 36.0 degrees; a 1.7 m person
    # filling half the height stands at 0.5/tan(18 deg) * 1.7 / 0.5 = 5.23 m.
    assert dist.vertical_fov_deg(60, 16 / 9) == pytest.approx(35.98, abs=0.01)
    assert dist.estimate_distance_m("person", (0.4, 0.25, 0.5, 0.75), aspect=16 / 9) == pytest.approx(5.23, abs=0.01)


def test_a_wider_field_of_view_brings_objects_nearer():
    box = (0.4, 0.25, 0.5, 0.75)
    assert dist.estimate_distance_m("dog", box, aspect=1.5, fov_deg=90) < dist.estimate_distance_m("dog", box, aspect=1.5)


def test_a_box_cut_by_the_top_or_bottom_uses_its_width():
    # a bus filling the frame's height (cut top and bottom) but not its width: estimate from the 12 m length
    d = dist.estimate_distance_m("bus", (0.2, 0.0, 0.8, 1.0), aspect=16 / 9)
    f_w = 0.5 / np.tan(np.radians(30))
    assert d == pytest.approx(f_w * 12.0 / 0.6, abs=0.01)


def test_unknown_labels_get_a_default_size_and_distances_are_clamped():
    assert dist.typical_size_m("zorblax") == (0.5, 0.5)
    assert dist.estimate_distance_m("person", (0.3, 0.45, 0.3001, 0.4501), aspect=1) == dist.MAX_DISTANCE_M
    with pytest.raises(ParameterError):
        dist.estimate_distance_m("person", (0, 0, 1, 1), aspect=1, fov_deg=5)


def test_direction_left_is_positive_azimuth_and_up_is_positive_elevation():
    az, el = dist.direction_deg((0.0, 0.0, 0.2, 0.2), aspect=16 / 9)
    assert az > 0 and el > 0
    az, el = dist.direction_deg((0.45, 0.45, 0.55, 0.55), aspect=16 / 9)
    assert az == 0 and el == 0
    az, _ = dist.direction_deg((0.999, 0.4, 1.0, 0.6), aspect=16 / 9)
    assert az == pytest.approx(-30, abs=0.1)  # the right edge of a 60-degree picture


# -- level and direct-to-reverberant ratio ---------------------------------------------------------------


def test_direct_level_falls_6_db_per_doubling_from_the_nearest():
    g = space.distance_gain_db([2.0, 4.0, 8.0, 1e6])
    assert g[:3] == pytest.approx([0.0, -6.0206, -12.0412], abs=1e-3)
    assert g[3] == -space.MAX_DISTANCE_LOSS_DB


def test_reverb_send_makes_drr_fall_3_db_per_doubling():
    d = np.array([2.0, 4.0, 8.0])
    direct = space.distance_gain_db(d)
    send = 20 * np.log10(space.reverb_sends(d, 0.3))
    drr = direct - send
    assert drr[0] == pytest.approx(-20 * np.log10(0.3), abs=1e-6)
    assert np.diff(drr) == pytest.approx([-3.0103, -3.0103], abs=1e-3)
    with pytest.raises(ParameterError):
        space.reverb_sends(d, 1.5)


def test_air_absorption_rolls_off_highs_only_for_far_sources():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SR).astype(np.float32)
    np.testing.assert_array_equal(space.apply_air_absorption(x, 30.0, SR), x)
    y = space.apply_air_absorption(x, 300.0, SR)
    spec_x, spec_y = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / SR)

    def band_db(lo, hi):
        m = (f >= lo) & (f < hi)
        return 10 * np.log10(spec_y[m].sum() / spec_x[m].sum())

    assert band_db(100, 400) > -0.5  # lows untouched
    assert band_db(7000, 9000) == pytest.approx(-3 * 5.9, abs=3)  # about 5.9 dB per 100 m at 8 kHz
    assert y.shape == x.shape and np.argmax(np.correlate(y[:2000], x[:2000], "full")) == 1999  # no delay


# -- the reverb bus -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("room", sorted(space.ROOMS))
def test_impulse_response_is_seeded_stereo_and_unit_energy(room):
    a, b, c = space.reverb_ir(room, SR, 0), space.reverb_ir(room, SR, 0), space.reverb_ir(room, SR, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape[0] == 2 and float(np.sum(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    corr = np.corrcoef(a[0], a[1])[0, 1]
    assert abs(corr) < 0.2  # decorrelated ears: a diffuse field, not a point


def test_outdoors_is_shorter_and_sparser_than_a_room():
    def decay_time(ir):
        e = np.cumsum((ir.astype(np.float64) ** 2).sum(0)[::-1])[::-1]
        edc = 10 * np.log10(e / e[0])
        return np.argmax(edc < -20) / SR

    def early_density(ir, window_s=0.05):
        head = np.abs(ir[0, : int(window_s * SR)])
        return int(np.sum(head > 0.1 * head.max()))

    room, outdoor = space.reverb_ir("room", SR), space.reverb_ir("outdoor", SR)
    assert decay_time(outdoor) < decay_time(room)
    assert early_density(outdoor) < early_density(room)
    assert space.room_for_ambience("kitchen / cafe") == "room" and space.room_for_ambience("street") == "outdoor"


def test_reverb_keeps_the_whole_tail_by_wrapping_it():
    bus = np.zeros(SR // 4, dtype=np.float32)  # shorter than the room's tail
    bus[-10] = 1.0
    wet = space.render_reverb(bus, room="room", sample_rate=SR)
    assert wet.shape == (2, bus.size)
    assert float(np.sum(wet.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)  # all of the unit-energy IR


# -- headphones --------------------------------------------------------------------------------------------------


def test_left_source_leads_and_is_louder_in_the_left_ear():
    hrtf = _hrtf()
    x = np.random.default_rng(0).standard_normal((1, SR)).astype(np.float32)
    az, _ = dist.direction_deg((0.05, 0.4, 0.15, 0.6), aspect=16 / 9)
    y = binaural.render_binaural(x, [1.0], [az], [0.0], hrtf)
    lag = _lag_ms(y)
    ild = 10 * np.log10(np.sum(y[0] ** 2) / np.sum(y[1] ** 2))
    assert 0.1 <= lag <= 0.8 and ild > 3
    centre = binaural.render_binaural(x, [1.0], [0.0], [0.0], hrtf)
    assert abs(_lag_ms(centre)) < 0.05
    assert abs(10 * np.log10(np.sum(centre[0] ** 2) / np.sum(centre[1] ** 2))) < 1.0


def test_missing_hrtf_file_is_reported_not_raised_as_a_traceback(tmp_path):
    with pytest.raises(binaural.HrtfUnavailable, match="not written"):
        binaural.load_hrtf(SR, tmp_path / "missing.sofa")
    bad = tmp_path / "bad.sofa"
    bad.write_bytes(b"not a sofa file")
    with pytest.raises(binaural.HrtfUnavailable, match="cannot be read"):
        binaural.load_hrtf(SR, bad)


def test_hrtf_is_resampled_to_the_mix_rate():
    _hrtf()
    h48 = binaural.load_hrtf(48000)
    assert h48.sample_rate == 48000 and h48.irs.shape[-1] == pytest.approx(512 * 48000 / 44100, abs=1)


def test_placement_gives_each_object_a_distance_and_direction():
    from imgext.vision.detection import Detection
    from imgext.vision.placement import place_objects, with_depth

    dets = [Detection("person", 0.9, (0.05, 0.1, 0.2, 0.9)), Detection("person", 0.8, (0.7, 0.4, 0.75, 0.6))]
    near, far = place_objects(dets, aspect=16 / 9)
    assert far.distance_m == pytest.approx(4 * near.distance_m, rel=0.02)
    assert near.azimuth_deg > 0 > far.azimuth_deg  # left of the picture is positive azimuth
    assert place_objects(dets)[0].distance_m is None  # no image shape, no estimate
    wider = with_depth([near, far], aspect=16 / 9, fov_deg=90)
    assert wider[0].distance_m < near.distance_m
