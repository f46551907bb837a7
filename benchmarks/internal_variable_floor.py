"""How well can the eq. 3 form do on a store when its internal variables are the true ones?
(paper 'rno' eq. 2-3; section 3 for composite1d, section 4 for the laminate; a study, not a speed
benchmark.)

The true internal variables are stored: composite1d's xi = <eps_p> (eq. 11-13, one variable) and the
laminate's layer plastic strains (eq. 17-24: 3 for MH, 6 otherwise). In both exemplars the stress is
an affine function of the mean strain and those variables (composite1d: eq. 11; laminate: the layers
share their elastic moduli), so ``f`` is fitted exactly by least squares. ``g`` is a SELU MLP fitted
by plain regression, no recurrence, to the stored increments ``(xi^n - xi^(n-1)) / dt`` from the inputs

* ``eq3``: ``(eps^n, xi^(n-1))``, what an RNO step sees when its internal variables are the true ones;
* ``eq3_previous_strain``: ``(eps^n, eps^(n-1), xi^(n-1))``, what a larger k could also carry.

Both are then rolled out from xi = 0 (``xi^n = xi^(n-1) + dt g``, ``sigma^n = f(eps^n, xi^n)``) and
scored by eq. 16 on the store's train and test split. A large gap between the two says the stored
step is too coarse for the flow (the viscoplastic overstress relaxes within one step, so the state
after a step depends on the strain increment, not only on its end point). The eq. 3 number is what
the true variables achieve, not a bound on a learned RNO: a learned state may encode more.

    python benchmarks/internal_variable_floor.py results/datasets/laminate_MH.zarr out/floor.json \
        [--epochs 150] [--width 200] [--depth 4] [--batch 256]
    python benchmarks/internal_variable_floor.py results/datasets/composite1d.zarr out/floor_N4.json \
        --segments 4 --width 100

~4 min per variant on one core for the paper-size MH store (640 train paths of 100 steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

VARIANTS = ("eq3", "eq3_previous_strain")


def eq16(pred: np.ndarray, truth: np.ndarray) -> float:
    """Paper 'rno' eq. 16: mean over paths of the relative L2 error of the stress history."""
    return float(np.mean(np.sqrt(((pred - truth) ** 2).sum((1, 2)) / (truth ** 2).sum((1, 2)))))


def load(store: str, segments: int | None = None):
    """(eps, sigma, xi, dt, train rows, test rows) of the finished paths; eps, sigma (P, T, c) and
    xi (P, T, k). composite1d: the paths of the N = ``segments`` composite (one material per N)."""
    from homlearn.data.integrity import open_dataset

    ds = open_dataset(store)
    exemplar = ds.attrs.get("exemplar")
    if exemplar not in ("laminate", "composite1d") or "plastic_strain" not in ds:
        raise ValueError(f"{store}: not a laminate or composite1d store with plastic strains")
    ok = ds["status"].values == 1
    if exemplar == "composite1d":
        present = sorted(set(ds["n_segments"].values[ok].tolist()))
        if segments not in present:
            raise ValueError(f"{store}: --segments must be one of the store's N {present}, got {segments}")
        ok &= ds["n_segments"].values == segments
    elif segments is not None:
        raise ValueError(f"{store}: --segments is for composite1d stores, this one is a laminate store")
    eps, sig, t = ds["strain"].values[ok], ds["stress"].values[ok], ds["time"].values
    ep = ds["plastic_strain"].values[ok]
    if exemplar == "composite1d":                               # (P, T) -> (P, T, 1)
        eps, sig, ep = eps[..., None], sig[..., None], ep[..., None]
    else:                                                       # (P, T, layer, 3)
        same = np.array_equal(ep[:, :, 0], ep[:, :, 1])         # homogeneous case: one state per path
        ep = ep[:, :, 0] if same else ep.reshape(ep.shape[0], ep.shape[1], -1)
    split = ds["split"].values[ok]
    dts = np.diff(t)
    if not np.allclose(dts, dts[0]):
        raise ValueError(f"{store}: the study assumes a uniform stored grid")
    return eps, sig, ep, float(dts[0]), np.flatnonzero(split == 0), np.flatnonzero(split == 1)


def study(store: str, variant: str, epochs: int, width: int, depth: int, batch: int, seed: int = 0,
          segments: int | None = None) -> dict:
    import torch

    from homlearn.models.mlp import MLP

    torch.manual_seed(seed)
    eps, sig, ep, dt, tr, te = load(store, segments)
    n_state, n_strain = ep.shape[-1], eps.shape[-1]
    design = lambda e, ee: np.concatenate([e, ee, np.ones(e.shape[:-1] + (1,))], -1)  # noqa: E731
    A, *_ = np.linalg.lstsq(design(eps[tr], ep[tr]).reshape(-1, n_strain + n_state + 1), sig[tr].reshape(-1, n_strain), rcond=None)
    f = lambda e, ee: design(e, ee) @ A  # noqa: E731

    def inputs(e_new, e_old, ep_old):
        return np.concatenate([e_new, ep_old] if variant == "eq3" else [e_new, e_old, ep_old], -1)

    X = inputs(eps[:, 1:], eps[:, :-1], ep[:, :-1])
    Y = (ep[:, 1:] - ep[:, :-1]) / dt
    Xf, Yf = X[tr].reshape(-1, X.shape[-1]), Y[tr].reshape(-1, n_state)
    xm, xs = Xf.mean(0), np.maximum(Xf.std(0), 1e-12)
    ym, ys = Yf.mean(0), np.maximum(Yf.std(0), 1e-12)
    Xt = torch.tensor((Xf - xm) / xs, dtype=torch.float32)
    Yt = torch.tensor((Yf - ym) / ys, dtype=torch.float32)
    g_net = MLP(X.shape[-1], n_state, [width] * depth)
    opt = torch.optim.Adam(g_net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for b in torch.randperm(len(Xt)).split(batch):
            loss = ((g_net(Xt[b]) - Yt[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        mse = float(((g_net(Xt) - Yt) ** 2).mean())

    def g(e_new, e_old, ep_old):
        with torch.no_grad():
            z = torch.tensor((inputs(e_new, e_old, ep_old) - xm) / xs, dtype=torch.float32)
            return g_net(z).numpy() * ys + ym

    out = {"variant": variant, "n_state": n_state, "f_teacher_forced_test": eq16(f(eps[te], ep[te]), sig[te]),
           "g_regression_mse_normalised": mse, "seconds": time.perf_counter() - t0}
    for name, rows in (("train", tr), ("test", te)):
        state, roll = np.zeros_like(ep[rows, 0]), [np.zeros_like(ep[rows, 0])]
        for n in range(1, eps.shape[1]):
            state = state + dt * g(eps[rows, n], eps[rows, n - 1], state)
            roll.append(state)
        roll = np.stack(roll, 1)
        one = np.concatenate([ep[rows, :1], ep[rows, :-1] + dt * g(eps[rows, 1:], eps[rows, :-1], ep[rows, :-1])], 1)
        out[name] = {"rollout_eq16": eq16(f(eps[rows], roll), sig[rows]),
                     "one_step_eq16": eq16(f(eps[rows], one), sig[rows]),
                     "plastic_strain_rollout_rel_l2": float(np.linalg.norm(roll - ep[rows]) / np.linalg.norm(ep[rows]))}
    return out


def main(argv=None) -> dict:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store")
    p.add_argument("out")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--segments", type=int, help="composite1d: the N whose paths are studied")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for v in a.variants:
        r = study(a.store, v, a.epochs, a.width, a.depth, a.batch, segments=a.segments)
        print(f"{v}: rollout eq. 16 train {100 * r['train']['rollout_eq16']:.2f}% test "
              f"{100 * r['test']['rollout_eq16']:.2f}% (one step {100 * r['test']['one_step_eq16']:.2f}%), "
              f"f exact to {100 * r['f_teacher_forced_test']:.1e}%, {r['seconds']:.0f} s", flush=True)
        rows.append(r)
    result = {"store": a.store, "segments": a.segments, "epochs": a.epochs, "width": a.width, "depth": a.depth, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
