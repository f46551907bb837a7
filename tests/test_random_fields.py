"""Random two-phase microstructures (paper 'rln' section 4): volume fraction, periodicity,
anisotropy from the per-axis widths, Latin-hypercube design, reproducibility."""

import numpy as np
import pytest

from homlearn.microstructure.random_fields import (design_samples, gaussian_two_phase,
                                                   latin_hypercube_design)


@pytest.mark.parametrize("vf", [0.0, 0.137, 0.5, 0.8, 1.0])
def test_volume_fraction_is_exact(vf):
    m = gaussian_two_phase((31, 31, 31), (2.0, 1.0, 3.0), vf, np.random.default_rng(1))
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    assert int(m.sum()) == round(vf * 31 ** 3)


def test_filter_is_periodic():
    """Shifting the noise shifts the microstructure (wrap-around filter: no boundary)."""
    noise = np.random.default_rng(3).random((16, 16, 16))

    class Fixed:
        def __init__(self, a):
            self.a = a

        def random(self, shape):
            return self.a

    a = gaussian_two_phase((16, 16, 16), (2.0, 3.0, 1.5), 0.4, Fixed(noise))
    b = gaussian_two_phase((16, 16, 16), (2.0, 3.0, 1.5), 0.4, Fixed(np.roll(noise, (5, -3, 7), (0, 1, 2))))
    np.testing.assert_array_equal(np.roll(a, (5, -3, 7), (0, 1, 2)), b)


def _same_phase_at_lag1(m, axis):
    return float(np.mean(m == np.roll(m, 1, axis)))


def test_widths_set_the_shape():
    """A wide filter along x and a narrow one along y: phases persist along x, not along y."""
    rng = np.random.default_rng(5)
    m = gaussian_two_phase((40, 40, 40), (5.0, 0.5, 2.0), 0.5, rng)
    px, py, pz = (_same_phase_at_lag1(m, a) for a in range(3))
    assert px > pz > py
    assert px > 0.9 and py < 0.8


def test_latin_hypercube_design_is_stratified_and_in_range():
    d = latin_hypercube_design(64, ndim=3, width_range=(0.5, 6.0), fraction_range=(0.2, 0.8), seed=2)
    assert d.shape == (64, 4)
    assert np.all((d[:, :3] >= 0.5) & (d[:, :3] <= 6.0)) and np.all((d[:, 3] >= 0.2) & (d[:, 3] <= 0.8))
    unit = np.column_stack([(d[:, :3] - 0.5) / 5.5, (d[:, 3] - 0.2) / 0.6])
    for col in unit.T:  # one point in each of the 64 strata of every dimension
        assert sorted(np.floor(col * 64).astype(int).tolist()) == list(range(64))


def test_samples_are_reproducible_per_index():
    d = latin_hypercube_design(4, seed=0)
    every = design_samples(d, 5, (12, 12, 12), seed=9)
    some = design_samples(d, 5, (12, 12, 12), seed=9, indices=[13, 2])
    np.testing.assert_array_equal(some[0], every[13])
    np.testing.assert_array_equal(some[1], every[2])
    assert not np.array_equal(every[0], every[1])  # same design point, new noise
    for i in range(20):
        assert int(every[i].sum()) == round(d[i // 5, 3] * 12 ** 3)
    with pytest.raises(IndexError):
        design_samples(d, 5, (12, 12, 12), seed=9, indices=[20])
