"""Material symmetries used to augment history training data (homlearn.train.symmetry).

The physics first: the laminate solver's response to a mirrored strain history (12 components
negated) is the mirrored response, for MH and the high-contrast M3 (measured: equal to the bit;
asserted to 1e-9 of the largest stress); swapping 11 and 22 is a symmetry of MH (same bound) but
not of M3 (measured 9.7% relative L2 change; asserted > 3%). Then the group the maps generate
and the refusals. Training on mirrored paths: tests/test_laminate_studies.py."""

from __future__ import annotations

import numpy as np
import pytest

from homlearn.loading.paths import hermite_interpolant, random_paths
from homlearn.solvers.analytic.composite1d import batch_interpolant
from homlearn.solvers.analytic.laminate import case, solve
from homlearn.train.symmetry import SYMMETRIES, augment, check_laminate, group_closure, symmetry_maps


def _solve(name, g, n=1):
    paths = random_paths(n, 3, max_value=0.33, intervals="uniform", seed=5, n_steps=200, t_final=0.2)
    pp = batch_interpolant([hermite_interpolant(paths.knots_t[k], paths.knots[k][:, c])
                            for k in range(n) for c in range(3)])
    sol = solve(case(name), paths.t, paths.values @ g.T, path=lambda t: np.asarray(pp(t)).reshape(n, 3) @ g.T)
    assert sol.success.all()
    return sol.stress


@pytest.mark.parametrize("name", ["MH", "M3"])
def test_laminate_response_commutes_with_its_symmetries(name):
    base = _solve(name, np.eye(3))
    assert np.abs(base).max() > 500.0  # deep in the plastic range (sigma0 = 50 or 100 MPa)
    for sym in ("mirror", "diagonal"):
        g = SYMMETRIES[sym][0]
        diff = _solve(name, g) - base @ g.T
        rel = np.sqrt((diff ** 2).sum() / (base ** 2).sum())
        if sym == "diagonal" and name == "M3":
            assert rel > 0.03, rel  # the layers break the 11 <-> 22 symmetry
        else:
            assert np.abs(diff).max() <= 1e-9 * np.abs(base).max(), (sym, np.abs(diff).max())


def test_group_generated_and_augmented_histories():
    mirror, diagonal = symmetry_maps(["mirror", "diagonal"], 3)
    assert len(group_closure([mirror])) == 2
    group = group_closure([mirror, diagonal])  # D2 acting on (11, 22, 12): identity, two mirrors, their product
    assert len(group) == 4 and np.array_equal(group[0], np.eye(3))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 7, 3)), rng.normal(size=(5, 7, 3))
    xa, ya = augment(x, y, ["mirror"])
    assert xa.shape == ya.shape == (10, 7, 3)
    np.testing.assert_array_equal(xa[:5], x)
    np.testing.assert_array_equal(xa[5:], x * [1, 1, -1])
    np.testing.assert_array_equal(ya[5:], y * [1, 1, -1])
    assert augment(x, y, [])[0] is x
    assert augment(x, y, ["mirror", "diagonal"])[0].shape == (20, 7, 3)


def test_bad_symmetries_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown symmetry 'rotate'; allowed: mirror, diagonal"):
        symmetry_maps(["rotate"], 3)
    with pytest.raises(ValueError, match="1 component"):
        symmetry_maps(["mirror"], 1)
    with pytest.raises(ValueError, match="twice"):
        symmetry_maps(["mirror", "mirror"], 3)
    layered = {"name": "M3", "sigma0_MPa": [50.0, 500.0], "m": [0.02, 0.2]}
    with pytest.raises(ValueError, match="'diagonal'.*'M3'"):
        check_laminate(["mirror", "diagonal"], layered)
    check_laminate(["mirror"], layered)
    check_laminate(["diagonal"], {"name": "MH", "sigma0_MPa": [100.0, 100.0], "m": [0.04, 0.04]})
    from homlearn.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match="symmetries"):
        validate_config({"rno": {"laminate": {"symmetries": ["rotate"]}}})


def test_summary_names_the_augmentation():
    from homlearn.evaluate.history import paths_label

    assert paths_label({"n_train": 640, "n_test": 160, "symmetries": ""}, 100) == "640/160 paths, 100 steps"
    assert paths_label({"n_train": 640, "n_test": 160, "symmetries": "mirror"}, 100) == (
        "640/160 paths (+ their mirror images, ours), 100 steps")


def test_summary_lists_augmented_models_beside_direct_ones_and_the_law_once(tmp_path):
    """An augmented study's metrics (rno.laminate.augmented) join the table as their own rows, named
    as ours; its classical reference (the same law on the same test paths) is not listed twice."""
    import json

    from homlearn.evaluate.history import write_summary

    law = {"case": "MH", "model": "exact_sdirk3", "steps": 100, "test_relative_l2": 0.0082, "failed": 0,
           "test_relative_l2_11": 0.007, "test_relative_l2_22": 0.007, "test_relative_l2_12": 0.012}
    files = []
    for name, sym, err in (("direct", "", 0.0239), ("augmented", "mirror", 0.0221)):
        row = {"model": "rno", "case": "MH", "k": 3, "test_relative_l2": err, "adam_epochs": 500,
               "lbfgs_epochs": 150, "n_train": 640, "n_test": 160, "symmetries": sym}
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps({"exemplar": "laminate", "error_vs_k": [row], "classical": [law]}))
    lines = write_summary(tmp_path / "summary.md", files).splitlines()
    rno = [line for line in lines if "error vs k" in line]
    assert len(rno) == 2 and "k=3: 2.39%" in rno[0] and "k=3: 2.21%" in rno[1]
    assert "(Fig. 3a, direct)" in rno[0] and "(Fig. 3a, direct, on mirror-augmented paths (ours))" in rno[1]
    assert "(+ their mirror images, ours)" in rno[1] and "ours" not in rno[0]
    assert sum("SDIRK3" in line for line in lines) == 1
