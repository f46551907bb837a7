"""Training loop with early stopping, per-epoch checkpoints and exact resume (paper gcnn section 6).

Adam, mean-squared-error loss, early stopping on the test loss with a patience, the best
checkpoint kept. The batch order of epoch e is drawn from a generator seeded by (seed, e), so a
run killed after any epoch and resumed from ``last.pt`` ends with the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 1000
    patience: int = 100
    seed: int = 0
    device: str = "auto"


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device 'cuda' but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _batches(samples: Sequence[dict], batch_size: int, collate: Callable, order=None):
    order = np.arange(len(samples)) if order is None else order
    for s in range(0, len(order), batch_size):
        yield collate([samples[k] for k in order[s:s + batch_size]])


def evaluate_loss(model, samples, collate, batch_size, device) -> float:
    """Mean squared error over ``samples`` (sample-weighted)."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in _batches(samples, batch_size, collate):
            batch = batch.to(device)
            pred = model(batch)
            total += torch.sum((pred - batch.y) ** 2).item() / batch.y.shape[1]
            n += batch.y.shape[0]
    return total / max(n, 1)


def predict(model, samples, collate, batch_size=256, device="cpu") -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for batch in _batches(samples, batch_size, collate):
            out.append(model(batch.to(device)).cpu().numpy())
    return np.concatenate(out)


def train(model: torch.nn.Module, train_samples: Sequence[dict], test_samples: Sequence[dict],
          collate: Callable, settings: TrainSettings, out_dir: Path | str,
          progress: bool = True, stop_after_epochs: int | None = None, run_id: str = "") -> dict:
    """Train ``model`` and keep ``best.pt``, ``last.pt`` and ``history.csv`` in ``out_dir``.

    ``stop_after_epochs`` ends this call early (as a kill would) without marking the run done;
    calling train again resumes from ``last.pt``. ``run_id`` names what is being trained (model,
    hyperparameters, data): a checkpoint left by a different run is not resumed but replaced.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    run_id = run_id or json.dumps(asdict(settings), sort_keys=True)
    state = {"epoch": 0, "best_loss": float("inf"), "best_epoch": 0, "history": [], "run_id": run_id}
    last = out / "last.pt"
    if last.exists():
        ckpt = torch.load(last, map_location=device, weights_only=False)
        if ckpt["state"].get("run_id") == run_id:  # resume the same run
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            state = ckpt["state"]
        else:
            print(f"{last}: checkpoint of another run (model, settings or data changed); starting afresh")
    t0 = time.perf_counter()
    epochs_now = 0
    bar = tqdm(total=settings.max_epochs, initial=state["epoch"], desc="train", unit="epoch",
               disable=not progress)
    while state["epoch"] < settings.max_epochs and state["epoch"] - state["best_epoch"] < settings.patience:
        epoch = state["epoch"] + 1
        order = np.random.default_rng([settings.seed, epoch]).permutation(len(train_samples))
        model.train()
        total, n = 0.0, 0
        for batch in _batches(train_samples, settings.batch_size, collate, order):
            batch = batch.to(device)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(batch), batch.y)
            loss.backward()
            opt.step()
            total += loss.item() * batch.y.shape[0]
            n += batch.y.shape[0]
        test_loss = evaluate_loss(model, test_samples, collate, 256, device)
        state["epoch"] = epoch
        state["history"].append({"epoch": epoch, "train_loss": total / n, "test_loss": test_loss})
        if test_loss < state["best_loss"]:
            state["best_loss"], state["best_epoch"] = test_loss, epoch
            torch.save({"model": model.state_dict(), "epoch": epoch}, out / "best.pt")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state},
                   out / "last.tmp")
        (out / "last.tmp").replace(last)  # atomic: a kill never leaves a torn checkpoint
        bar.update(1)
        bar.set_postfix(train=f"{total / n:.2e}", test=f"{test_loss:.2e}", best=state["best_epoch"])
        epochs_now += 1
        if stop_after_epochs is not None and epochs_now >= stop_after_epochs:
            bar.close()
            return {"finished": False, **_summary(state, settings, device, t0)}
    bar.close()
    _write_history(out / "history.csv", state["history"])
    best = torch.load(out / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best["model"])
    summary = {"finished": True, **_summary(state, settings, device, t0)}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    return summary


def _summary(state, settings, device, t0) -> dict:
    return {"epochs": state["epoch"], "best_epoch": state["best_epoch"],
            "best_test_loss": state["best_loss"], "device": str(device),
            "seconds_this_call": time.perf_counter() - t0, "settings": asdict(settings)}


def _write_history(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["epoch", "train_loss", "test_loss"])
        w.writeheader()
        w.writerows(history)
