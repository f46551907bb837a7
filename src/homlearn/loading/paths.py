"""Strain / deformation-gradient histories: random training paths and deterministic test paths.

Random paths follow paper 'pcanet' sec. 2.2 (stretch U_ij, i <= j) and paper 'rno' sec. 2
(deformation gradient F_ij, i <= j): (0, T) is cut into N intervals, knot values take
Rademacher steps ``X_m = X_{m-1} + nu_m * max_value * sqrt(dt_m)`` per component, and the path
is the cubic Hermite interpolant of the knots, evaluated on a fine uniform grid (the solver's
time steps; 'pcanet' sec. 2.2 and 'rno' sec. 6: 1000 steps, stored downsampled to 200).

Test paths follow 'pcanet' sec. 2.2 / Fig. 1(e-g), Fig. 2 and 'rno' sec. 5.2 / Fig. 9:
uniaxial, load-unload, cyclic, cavity expansion ("shear"), and causality paths that share a
history up to a time and then diverge.

Component layout. A path carries ``n_components`` independent scalars. For tensors of
dimension d the order used everywhere in homlearn (see ``solvers/fft/projection.py``) is
:func:`component_pairs`: the diagonal (0,0), (1,1), ..., then (i, j) with i < j row by row
((0,1), (0,2), (1,2) for d = 3; this is NOT Voigt's (1,2), (0,2), (0,1)).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Any, Mapping

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = [
    "Paths", "random_paths", "knot_times", "rademacher_knots", "hermite_interpolant",
    "component_pairs", "identity_components", "symmetric_from_components",
    "upper_triangular_from_components", "full_from_components",
    "uniaxial", "load_unload", "cyclic", "ramp_hold", "cavity_expansion", "shear",
    "isochoric_lateral", "diverging_paths",
]

INTERVALS = ("fixed", "uniform")


# --------------------------------------------------------------------------- validation

def _int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _start(start, n_components: int) -> np.ndarray:
    if start is None:
        return np.zeros(n_components)
    x0 = np.asarray(start, dtype=float)
    if x0.ndim == 0:
        x0 = np.full(n_components, float(x0))
    if x0.shape != (n_components,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"start must be None, a finite scalar or {n_components} finite values "
                         f"(one per component), got shape {np.shape(start)}")
    return x0


def _grid(n_steps, t_final) -> np.ndarray:
    n_steps = _int("n_steps", n_steps)
    t_final = _positive("t_final", t_final)
    return np.linspace(0.0, t_final, n_steps + 1)


# --------------------------------------------------------------------------- container

@dataclass(frozen=True)
class Paths:
    """A batch of paths on a common uniform time grid.

    ``t`` (n_steps+1,) from 0 to t_final; ``values`` (n_paths, n_steps+1, n_components);
    ``knots_t`` (n_paths, N+1) and ``knots`` (n_paths, N+1, n_components) are the
    interpolation nodes of random paths (None for closed-form test paths); ``attrs`` records
    how the paths were made (for dataset attributes).
    """

    t: np.ndarray
    values: np.ndarray
    knots_t: np.ndarray | None = None
    knots: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.t.ndim != 1 or self.values.ndim != 3 or self.values.shape[1] != self.t.size:
            raise ValueError(f"values must be (n_paths, {self.t.size}, n_components) for t of "
                             f"shape {self.t.shape}, got {self.values.shape}")

    @property
    def n_paths(self) -> int:
        return self.values.shape[0]

    @property
    def n_steps(self) -> int:
        return self.t.size - 1

    @property
    def n_components(self) -> int:
        return self.values.shape[2]

    @property
    def t_final(self) -> float:
        return float(self.t[-1])

    def path(self, k: int) -> "Paths":
        """Path ``k`` alone, as a one-path :class:`Paths`."""
        k = _int("k", k, 0)
        if k >= self.n_paths:
            raise ValueError(f"k must be < n_paths = {self.n_paths}, got {k}")
        sl = slice(k, k + 1)
        return replace(self, values=self.values[sl],
                       knots_t=None if self.knots_t is None else self.knots_t[sl],
                       knots=None if self.knots is None else self.knots[sl])

    def downsample(self, n_out: int) -> "Paths":
        """The stored values at ``n_out + 1`` evenly spaced times, t = 0 and t_final included
        ('pcanet' sec. 2.2, 'rno' sec. 6: solved on 1000 steps, stored on 200)."""
        n_out = _int("n_out", n_out)
        if self.n_steps % n_out:
            raise ValueError(f"n_steps ({self.n_steps}) must be divisible by n_out ({n_out}) "
                             "to downsample without interpolation")
        stride = self.n_steps // n_out
        return replace(self, t=self.t[::stride], values=self.values[:, ::stride],
                       attrs={**self.attrs, "downsampled_from": self.n_steps})


# --------------------------------------------------------------------------- random paths

def knot_times(n_intervals: int, t_final: float, intervals: str,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Knot times 0 = t_0 < ... < t_N = t_final ('pcanet' sec. 2.2, 'rno' sec. 2).

    ``"fixed"``: N equal intervals. ``"uniform"`` ('rno' sec. 2: "random time intervals drawn
    from a uniform distribution"): weights w_m = 1 - U_m with U_m ~ U[0, 1) i.i.d. (so w_m in
    (0, 1], never zero), dt_m = t_final * w_m / sum(w); t_N is set to t_final exactly.
    """
    if intervals not in INTERVALS:
        raise ValueError(f"intervals must be one of {INTERVALS}, got {intervals!r}")
    if intervals == "fixed":
        return np.linspace(0.0, t_final, n_intervals + 1)
    w = 1.0 - rng.random(n_intervals)
    kt = np.concatenate([[0.0], t_final * np.cumsum(w) / w.sum()])
    kt[-1] = t_final
    return kt


def rademacher_knots(knots_t: np.ndarray, max_value: float, start: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Knot values X_0 = start, X_m = X_{m-1} + nu_m max_value sqrt(dt_m), nu_m in {-1, +1}
    i.i.d. fair per component ('pcanet' sec. 2.2; 'rno' sec. 2, nu_ij independent per ij)."""
    dt = np.diff(knots_t)
    nu = 2 * rng.integers(0, 2, size=(dt.size, start.size), dtype=np.int8) - 1
    steps = nu * (max_value * np.sqrt(dt))[:, None]
    return np.concatenate([start[None], start + np.cumsum(steps, axis=0)])


def knot_amplitude(max_strain: float, t_final: float, n_intervals: int) -> float:
    """F_max whose paths never leave |X(t) - X_0| <= max_strain ('rno' sec. 4: "a maximum
    strain of 33%").

    |X_M - X_0| <= F_max sum_m sqrt(dt_m) <= F_max sqrt(M T) (Cauchy-Schwarz, equality for equal
    intervals), and the PCHIP interpolant never overshoots its knots, so F_max = max_strain /
    sqrt(M T) bounds every path and a path whose M signs all agree on equal intervals reaches it.
    The final strain then has standard deviation max_strain / sqrt(M).
    """
    return _positive("max_strain", max_strain) / np.sqrt(_int("n_intervals", n_intervals) * t_final)


def config_amplitude(path: Mapping[str, Any]) -> float:
    """F_max of a config ``path`` block: its ``max_value`` when set, else
    :func:`knot_amplitude` of its ``max_strain``, ``t_final`` and ``n_intervals``."""
    if path.get("max_value") is not None:
        return float(path["max_value"])
    return float(knot_amplitude(path["max_strain"], path["t_final"], path["n_intervals"]))


def hermite_interpolant(knots_t: np.ndarray, knots: np.ndarray) -> PchipInterpolator:
    """Cubic Hermite interpolant of the knots with PCHIP (Fritsch-Carlson) slopes.

    The papers say "cubic Hermite interpolation" and no more. We use the piecewise cubic
    Hermite interpolating polynomial (scipy ``PchipInterpolator``, MATLAB ``pchip``): C1,
    through every knot, and shape-preserving: where the Rademacher walk turns (nu changes
    sign) the slope is zero, so the path "changes direction" at the knot and never overshoots
    it ('pcanet' sec. 2.2: "smooth but changes direction arbitrarily"); between two knots the
    path stays between their values, so |X(t) - X_0| <= max_m |X_m - X_0|. Finite-difference
    (Catmull-Rom) slopes would overshoot the knots at every turn.
    """
    return PchipInterpolator(knots_t, knots, axis=0)


def _path_generators(seed: int, k: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Generators of path k: SeedSequence(seed, spawn_key=(k,)) (= SeedSequence(seed).spawn(n)[k]
    for any n > k), split into one stream for the interval lengths and one for the signs, so
    path k's signs are the same with fixed or uniform intervals."""
    s_int, s_sign = np.random.SeedSequence(seed, spawn_key=(k,)).spawn(2)
    return np.random.default_rng(s_int), np.random.default_rng(s_sign)


def random_paths(n_paths: int, components: int, *, t_final: float = 1.0, n_intervals: int = 10,
                 max_value: float, intervals: str = "fixed", n_steps: int = 1000, seed: int,
                 start=None, first_index: int = 0) -> Paths:
    """Random smooth paths of 'pcanet' sec. 2.2 / 'rno' sec. 2, on n_steps+1 uniform times.

    Path k (k = first_index ... first_index + n_paths - 1) depends only on (seed, k) and the
    other arguments, never on n_paths, so a dataset can be made in batches or resumed
    (``first_index`` = the batch's first sample). ``components`` independent scalars per path
    (d(d+1)/2 for U or F with i <= j). ``start`` is X_0 (default zeros; pass
    :func:`identity_components` for stretches / deformation gradients). Since sum dt_m = T and
    E[nu^2] = 1, X_N - X_0 has mean 0 and standard deviation max_value * sqrt(t_final) per
    component; max_value is the papers' U_max / F_max.
    """
    n_paths = _int("n_paths", n_paths)
    components = _int("components", components)
    n_intervals = _int("n_intervals", n_intervals)
    max_value = _positive("max_value", max_value)
    t = _grid(n_steps, t_final)
    t_final = float(t[-1])
    if intervals not in INTERVALS:
        raise ValueError(f"intervals must be one of {INTERVALS}, got {intervals!r}")
    seed = _int("seed", seed, 0)
    first_index = _int("first_index", first_index, 0)
    x0 = _start(start, components)

    knots_t = np.empty((n_paths, n_intervals + 1))
    knots = np.empty((n_paths, n_intervals + 1, components))
    for i in range(n_paths):
        rng_int, rng_sign = _path_generators(seed, first_index + i)
        knots_t[i] = knot_times(n_intervals, t_final, intervals, rng_int)
        knots[i] = rademacher_knots(knots_t[i], max_value, x0, rng_sign)

    if intervals == "fixed":  # one interpolant for the whole batch
        flat = np.moveaxis(knots, 0, 1).reshape(n_intervals + 1, -1)
        vals = hermite_interpolant(knots_t[0], flat)(t)
        values = np.moveaxis(vals.reshape(t.size, n_paths, components), 1, 0)
    else:
        values = np.stack([hermite_interpolant(knots_t[i], knots[i])(t) for i in range(n_paths)])
    values = np.ascontiguousarray(values)
    values[:, 0] = x0  # exact at t = 0 (PCHIP is exact there too; made explicit)

    attrs = dict(kind="random", seed=seed, first_index=first_index, max_value=max_value,
                 n_intervals=n_intervals, intervals=intervals, interpolation="pchip",
                 start=x0.tolist())
    return Paths(t=t, values=values, knots_t=knots_t, knots=knots, attrs=attrs)


# --------------------------------------------------------------------------- tensor layouts

def component_pairs(d: int) -> list[tuple[int, int]]:
    """(i, j) of each of the d(d+1)/2 components: diagonal first, then i < j row by row."""
    d = _int("d", d)
    return [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]


def _check_last(values, n: int, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim == 0 or v.shape[-1] != n:
        raise ValueError(f"values must have {n} components on the last axis for {what}, "
                         f"got shape {np.shape(values)}")
    return v


def symmetric_from_components(values, d: int) -> np.ndarray:
    """(..., d(d+1)/2) -> (..., d, d) symmetric tensors ('pcanet' sec. 2.2: U_ij, i <= j),
    component order :func:`component_pairs`."""
    pairs = component_pairs(d)
    v = _check_last(values, len(pairs), f"a symmetric {d}x{d} tensor")
    out = np.zeros(v.shape[:-1] + (d, d))
    for c, (i, j) in enumerate(pairs):
        out[..., i, j] = v[..., c]
        out[..., j, i] = v[..., c]
    return out


def upper_triangular_from_components(values, d: int) -> np.ndarray:
    """(..., d(d+1)/2) -> (..., d, d) upper-triangular F ('rno' sec. 2: F_ij, i <= j, drawn
    independently; we read the unlisted F_ij, i > j, as zero).

    Every F with det F > 0 is Q T with Q a rotation and T upper triangular (QR), so for a
    frame-indifferent response upper-triangular F loses no deformation; it has the same
    d(d+1)/2 unknowns as the symmetric stretch U of 'pcanet' (:func:`symmetric_from_components`,
    the other reading of the same text). Component order :func:`component_pairs`.
    """
    pairs = component_pairs(d)
    v = _check_last(values, len(pairs), f"an upper-triangular {d}x{d} tensor")
    out = np.zeros(v.shape[:-1] + (d, d))
    for c, (i, j) in enumerate(pairs):
        out[..., i, j] = v[..., c]
    return out


def full_from_components(values, d: int) -> np.ndarray:
    """(..., d*d) -> (..., d, d), all d*d components independent, row-major (F_00, F_01, ...)."""
    d = _int("d", d)
    v = _check_last(values, d * d, f"a full {d}x{d} tensor")
    return v.reshape(v.shape[:-1] + (d, d)).copy()


def identity_components(d: int, layout: str = "pairs") -> np.ndarray:
    """Components of the identity, the start of stretch / deformation-gradient paths:
    ``"pairs"`` (symmetric or upper-triangular, :func:`component_pairs`) or ``"full"`` (d*d)."""
    d = _int("d", d)
    if layout == "pairs":
        return np.concatenate([np.ones(d), np.zeros(d * (d - 1) // 2)])
    if layout == "full":
        return np.eye(d).ravel()
    raise ValueError(f"layout must be 'pairs' or 'full', got {layout!r}")


# --------------------------------------------------------------------------- test paths

def _on_component0(t: np.ndarray, profile: np.ndarray, components, start, attrs) -> Paths:
    components = _int("components", components)
    x0 = _start(start, components)
    values = np.broadcast_to(x0, (1, t.size, components)).copy()
    values[0, :, 0] += profile
    return Paths(t=t, values=values, attrs={**attrs, "start": x0.tolist()})


def uniaxial(n_steps: int, t_final: float, max_value: float, *, components: int = 1,
             start=None) -> Paths:
    """Monotone ramp of component 0 from start to start + max_value at t_final, the others
    held at start ('pcanet' Fig. 1(e): f(t) = c t; 'rno' Fig. 9(a) uniaxial tension)."""
    t = _grid(n_steps, t_final)
    max_value = _positive("max_value", max_value)
    return _on_component0(t, max_value * (t / t[-1]), components, start,
                          dict(kind="uniaxial", max_value=max_value))


def load_unload(n_steps: int, t_final: float, max_value: float, *, t_peak: float | None = None,
                components: int = 1, start=None) -> Paths:
    """Component 0 up linearly to start + max_value at t_peak (default t_final / 2), then
    linearly back to start at t_final ('pcanet' Fig. 1(f); its text writes the unloading
    branch as c (t - 0.5), which would jump back to zero at t = 0.5: we read it as c (1 - t)).
    The peak is on the grid, and reached exactly, when t_peak * n_steps / t_final is an integer.
    """
    t = _grid(n_steps, t_final)
    max_value = _positive("max_value", max_value)
    T = t[-1]
    t_peak = T / 2 if t_peak is None else float(t_peak)
    if not 0.0 < t_peak < T:
        raise ValueError(f"t_peak must lie in (0, t_final = {T}), got {t_peak}")
    profile = max_value * np.minimum(t / t_peak, (T - t) / (T - t_peak))
    k = round(t_peak / T * (t.size - 1))
    if abs(t[k] - t_peak) <= 1e-12 * T:
        profile[k] = max_value
    profile[-1] = 0.0
    return _on_component0(t, profile, components, start,
                          dict(kind="load_unload", max_value=max_value, t_peak=t_peak))


def cyclic(n_steps: int, t_final: float, amplitude: float, n_cycles: int, *,
           components: int = 1, start=None) -> Paths:
    """Fully reversed uniaxial cycles of component 0 ('rno' Fig. 9(c), "uniaxial cyclic
    loading"): a triangle wave 0 -> +amplitude -> -amplitude -> 0, n_cycles times, at constant
    rate 4 amplitude n_cycles / t_final. The papers give no waveform: triangular (constant
    strain rate) is ours, the usual strain-controlled cyclic test. The extremes +-amplitude
    fall on the grid, and are reached exactly, when 4 n_cycles divides n_steps.
    """
    t = _grid(n_steps, t_final)
    amplitude = _positive("amplitude", amplitude)
    n_cycles = _int("n_cycles", n_cycles)
    n = t.size - 1
    q = np.mod(4.0 * n_cycles * np.arange(n + 1) / n, 4.0)  # quarter cycles, exact on multiples
    tri = np.where(q <= 1, q, np.where(q <= 3, 2.0 - q, q - 4.0))
    return _on_component0(t, amplitude * tri, components, start,
                          dict(kind="cyclic", amplitude=amplitude, n_cycles=n_cycles))


def ramp_hold(n_steps: int, t_final: float, rate: float, t_holds, *, components: int = 1,
              start=None) -> Paths:
    """One path per t_i in ``t_holds``: component 0 = start + rate * min(t, t_i), i.e. a
    uniaxial ramp held constant after t_i ('pcanet' Fig. 2(b), causality test): paths i and j
    coincide up to min(t_i, t_j)."""
    t = _grid(n_steps, t_final)
    rate = _positive("rate", rate)
    th = np.atleast_1d(np.asarray(t_holds, dtype=float))
    if th.ndim != 1 or th.size == 0 or np.any(~(th > 0)) or np.any(th > t[-1]):
        raise ValueError(f"t_holds must be one or more times in (0, t_final = {t[-1]}], "
                         f"got {t_holds!r}")
    components = _int("components", components)
    x0 = _start(start, components)
    values = np.broadcast_to(x0, (th.size, t.size, components)).copy()
    values[:, :, 0] += rate * np.minimum(t[None, :], th[:, None])
    return Paths(t=t, values=values, attrs=dict(kind="ramp_hold", rate=rate,
                                                t_holds=th.tolist(), start=x0.tolist()))


def cavity_expansion(n_steps: int, t_final: float = 1.0, *, c: float, d: int = 2) -> Paths:
    """Stretch of cavity expansion ('pcanet' sec. 2.2, Fig. 1(g), there called "shear"):
    U_11 = (U_22)^-1 = 1 / sqrt(1 + c t^2), U_12 = 0 -- an isochoric pure shear in the
    principal axes (det U = 1), the radial / hoop stretch of a material point near a growing
    cylindrical cavity. Symmetric components (:func:`component_pairs`); for d = 3 ('rno'
    Fig. 9(b) gives no formula) we take plane strain, U_33 = 1, other components zero.
    """
    t = _grid(n_steps, t_final)
    c = _positive("c", c)
    if d not in (2, 3):
        raise ValueError(f"d must be 2 or 3, got {d!r}")
    hoop = np.sqrt(1.0 + c * t ** 2)
    values = np.broadcast_to(identity_components(d), (1, t.size, d * (d + 1) // 2)).copy()
    values[0, :, 0] = 1.0 / hoop
    values[0, :, 1] = hoop
    return Paths(t=t, values=values, attrs=dict(kind="cavity_expansion", c=c, d=d))


#: 'pcanet' Fig. 1(g) names the cavity-expansion path "shear": the same function.
shear = cavity_expansion


def isochoric_lateral(paths: Paths, d: int) -> Paths:
    """Set U_22 = 1 / U_11 in symmetric stretch paths of dimension d ('pcanet' sec. 2.2,
    Fig. 1(e,f): "uniaxial strain U_11 = f(t), U_22 = 1/f(t)"); other components unchanged."""
    d = _int("d", d, 2)
    n = d * (d + 1) // 2
    if paths.n_components != n:
        raise ValueError(f"paths must have d(d+1)/2 = {n} components for d = {d}, "
                         f"got {paths.n_components}")
    u11 = paths.values[:, :, 0]
    if np.any(u11 <= 0):
        raise ValueError("component 0 (U_11) must be > 0 everywhere to be a stretch; "
                         "start stretch paths at identity_components(d)")
    values = paths.values.copy()
    values[:, :, 1] = 1.0 / u11
    return replace(paths, values=values, attrs={**paths.attrs, "isochoric_lateral": True})


def diverging_paths(base_path: Paths, t_split: float, n_branches: int, seed: int, *,
                    max_value: float, n_intervals: int | None = None,
                    intervals: str = "fixed") -> Paths:
    """Paths equal to ``base_path`` (one path) for t <= t_split, then different ('pcanet'
    sec. 2.2, Fig. 2(a): five paths identical on (0, 0.5), distinct on (0.5, 1)).

    Branch b continues as base(t_split) + R(t - t_split), R a random path of
    :func:`random_paths` on [0, t_final - t_split] started at zero (same max_value meaning).
    The branches are continuous at t_split, not C1 (as the ramp-and-hold paths of Fig. 2(b)).
    n_intervals defaults to the papers' density, max(1, round(10 (t_final - t_split) / t_final)).
    Candidates are drawn from SeedSequence(seed, spawn_key=(j,)), j = 0, 1, ...; one equal
    after t_split to an earlier branch is skipped, so all branches differ as functions on
    (t_split, t_final] (two may still agree over a first stretch, e.g. the first interval when
    their first signs agree).
    """
    if not isinstance(base_path, Paths) or base_path.n_paths != 1:
        raise ValueError("base_path must be a Paths holding exactly one path "
                         "(use paths.path(k) to pick one)")
    n_branches = _int("n_branches", n_branches)
    seed = _int("seed", seed, 0)
    max_value = _positive("max_value", max_value)
    t = base_path.t
    T, n = float(t[-1]), t.size - 1
    if isinstance(t_split, bool) or not isinstance(t_split, Real) or not 0.0 < t_split < T:
        raise ValueError(f"t_split must lie in (0, t_final = {T}), got {t_split!r}")
    k = round(t_split / T * n)
    if abs(t[k] - t_split) > 1e-9 * T or not 0 < k < n:
        raise ValueError(f"t_split ({t_split}) must be a time of base_path's grid "
                         f"(a multiple of t_final / n_steps = {T / n}) strictly inside it")
    if n_intervals is None:
        n_intervals = max(1, round(10 * (T - t[k]) / T))
    n_intervals = _int("n_intervals", n_intervals)
    if intervals not in INTERVALS:
        raise ValueError(f"intervals must be one of {INTERVALS}, got {intervals!r}")
    n_comp = base_path.n_components
    if intervals == "fixed" and n_branches > 2 ** min(n_intervals * n_comp, 60):
        raise ValueError(f"n_branches ({n_branches}) exceeds the 2^(n_intervals * components) = "
                         f"{2 ** (n_intervals * n_comp)} distinct sign patterns")

    tau = t[k:] - t[k]
    span = float(tau[-1])
    x_split = base_path.values[0, k]
    branches, j = [], 0
    while len(branches) < n_branches:
        if j > 100 * n_branches + 1000:
            raise ValueError("could not draw n_branches distinct branches; "
                             "raise n_intervals or lower n_branches")
        rng_int, rng_sign = _path_generators(seed, j)
        j += 1
        kt = knot_times(n_intervals, span, intervals, rng_int)
        kv = rademacher_knots(kt, max_value, np.zeros(n_comp), rng_sign)
        tail = x_split + hermite_interpolant(kt, kv)(tau)
        tail[0] = x_split
        if not any(np.array_equal(tail, b) for b in branches):
            branches.append(tail)

    values = np.repeat(base_path.values, n_branches, axis=0)
    values[:, k:] = np.stack(branches)
    attrs = dict(kind="diverging", t_split=float(t[k]), seed=seed, max_value=max_value,
                 n_intervals=n_intervals, intervals=intervals, base=dict(base_path.attrs))
    return Paths(t=t.copy(), values=values, attrs=attrs)
