import numpy as np
import pytest

from testbed.report.curves import band, first_crossing, step_interpolate


def test_step_interpolate_holds_last_value_and_is_nan_before_first_point():
    x = np.array([0.0, 4.0, 8.0])
    y = np.array([0.2, 0.45, 0.6])
    out = step_interpolate(x, y, np.array([-1.0, 0.0, 3.9, 4.0, 5.0, 8.0, 9.0]))
    np.testing.assert_array_equal(out, [np.nan, 0.2, 0.2, 0.45, 0.45, 0.6, 0.6])


def test_step_interpolate_sorts_and_takes_the_latest_of_equal_x():
    out = step_interpolate(np.array([4.0, 0.0, 4.0]), np.array([0.3, 0.1, 0.5]), np.array([0.0, 4.0]))
    np.testing.assert_array_equal(out, [0.1, 0.5])


def test_step_interpolate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal length"):
        step_interpolate(np.zeros(3), np.zeros(2), np.zeros(1))


def test_band_on_hand_made_seeds():
    # seed 0 evaluated at 0, 4, 8 s; seed 1 at 0, 5, 10 s. The common span ends at 8 s.
    b = band([(np.array([0.0, 4.0, 8.0]), np.array([0.2, 0.45, 0.6])),
              (np.array([0.0, 5.0, 10.0]), np.array([0.2, 0.5, 0.6]))])  # fmt: skip
    np.testing.assert_array_equal(b.x, [0.0, 4.0, 5.0, 8.0])
    np.testing.assert_allclose(b.mean, [0.2, 0.325, 0.475, 0.55])
    np.testing.assert_allclose(b.lo, [0.2, 0.2, 0.45, 0.5])
    np.testing.assert_allclose(b.hi, [0.2, 0.45, 0.5, 0.6])
    np.testing.assert_allclose(b.std, [0.0, 0.125, 0.025, 0.05])
    assert b.n_seeds == 2


def test_band_of_one_seed_is_the_seed_itself():
    x, y = np.array([0.0, 1.0, 3.0]), np.array([0.1, 0.4, 0.3])
    b = band([(x, y)])
    np.testing.assert_array_equal(b.x, x)
    np.testing.assert_array_equal(b.mean, y)
    np.testing.assert_array_equal(b.lo, b.hi)


def test_band_starts_where_every_seed_has_started_and_ignores_nan_x():
    b = band([(np.array([1.0, 2.0, np.nan]), np.array([0.1, 0.2, 0.9])), (np.array([0.0, 3.0]), np.array([0.0, 0.5]))])
    np.testing.assert_array_equal(b.x, [1.0, 2.0])
    np.testing.assert_allclose(b.mean, [0.05, 0.1])


def test_band_of_nothing_is_empty():
    b = band([])
    assert b.n_seeds == 0 and b.x.size == 0


def test_first_crossing():
    x = np.array([0.0, 4.0, 5.0, 8.0])
    assert first_crossing(x, np.array([0.2, 0.325, 0.475, 0.55]), 0.5) == 8.0
    assert first_crossing(x, np.array([0.2, 0.5, 0.4, 0.6]), 0.5) == 4.0  # reaching counts (>=)
    assert first_crossing(x, np.array([np.nan, 0.1, 0.2, 0.3]), 0.5) is None
