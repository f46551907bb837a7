"""The training loop shared by every model: Adam (weight decay), an optional cosine schedule,
early stopping on the validation loss, an optional full-batch L-BFGS finishing phase
(``lbfgs_epochs``), per-epoch atomic checkpoints and exact resume.

The batch order of epoch e is a permutation seeded by (seed, e); the checkpoint ``last.pt``
holds model, optimiser, scheduler and torch RNG state. A run killed after any epoch and resumed
therefore ends with the same weights as an uninterrupted run (bit for bit on CPU). A
checkpoint whose ``run_id`` differs (other model, settings or data) is replaced, not resumed,
except one of the same run with fewer L-BFGS epochs, which is carried on (``extends``).

Files in ``out_dir``: ``last.pt`` (every epoch), ``best.pt`` (best validation loss),
``history.csv`` (every epoch: train_loss, val_loss, lr, seconds), ``training.json`` (summary,
when finished) and ``tensorboard/`` when TensorBoard is installed.

    settings = TrainSettings.from_config(cfg["train"])
    summary = train(model, train_samples, val_samples, collate_tensors, settings, out_dir,
                    run_id=run_id(name, hyper, settings.run_key(), fingerprint))
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from homlearn.train.batches import (batch_len, collate_tensors, default_forward, epoch_order, fetch,
                                    iterate_batches, to_device)
from homlearn.train.checkpoint import load_run, rng_state, save_atomic, set_rng_state
from homlearn.train.device import accelerate, pick_device
from homlearn.train.logs import TensorBoard, write_history
from homlearn.train.losses import get_loss
from homlearn.train.settings import TrainSettings

__all__ = ["TrainSettings", "pick_device", "train", "evaluate_loss", "predict", "make_scheduler"]

Forward = Callable[[Callable, Any], tuple[Any, Any]]


def make_scheduler(opt: torch.optim.Optimizer, settings: TrainSettings):
    """The epoch-wise learning-rate schedule (None for a constant rate)."""
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.max_epochs)
    return None


def _float(t):
    return t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t


def evaluate_loss(model, samples: Sequence, collate: Callable, batch_size: int, device,
                  loss: str | Callable = "mse", forward: Forward = default_forward,
                  autocast: Callable | None = None) -> float:
    """``loss`` over ``samples``, averaged per sample (batch losses weighted by batch size)."""
    loss_fn = get_loss(loss)
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in iterate_batches(samples, batch_size, collate):
            batch = to_device(batch, device)
            with autocast() if autocast else contextlib.nullcontext():
                pred, y = forward(model, batch)
            b = batch_len(y)
            total += loss_fn(_float(pred), _float(y)).item() * b
            n += b
    return total / max(n, 1)


def predict(model, samples: Sequence, collate: Callable = collate_tensors, batch_size: int = 256,
            device="cpu", forward: Forward = default_forward) -> np.ndarray:
    """The model's outputs on ``samples`` (in order), concatenated along the batch dimension."""
    model.eval()
    out = []
    with torch.no_grad():
        for batch in iterate_batches(samples, batch_size, collate):
            pred, _ = forward(model, to_device(batch, device))
            out.append(pred.float().cpu().numpy())
    return np.concatenate(out)


def train(model: torch.nn.Module, train_samples: Sequence, val_samples: Sequence,
          collate: Callable = collate_tensors, settings: TrainSettings = TrainSettings(),
          out_dir: Path | str = ".", progress: bool = True, stop_after_epochs: int | None = None,
          run_id: str = "", loss: str | Callable | None = None, forward: Forward = default_forward,
          eval_batch_size: int = 256, extends: Sequence[str] = ()) -> dict:
    """Train ``model`` on ``train_samples``, stop early on ``val_samples``; end with the best weights.

    ``collate`` makes a batch from a list of samples (graphs: ``collate_graphs``; fixed-shape
    histories: :func:`collate_tensors`); ``forward(model, batch) -> (pred, target)`` runs it (see
    :mod:`homlearn.train.batches`). ``loss`` overrides ``settings.loss`` (a name or a callable).
    ``stop_after_epochs`` ends this call early (as a kill would) without marking the run done;
    calling again resumes from ``last.pt``. ``run_id`` names what is trained (model,
    hyperparameters, data); by default the settings. ``extends``: ids of the same run with fewer
    L-BFGS epochs (:func:`homlearn.train.record.run_ids`); their checkpoint is carried on to
    ``settings.lbfgs_epochs``, with the same result as training that long from the start.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(train_samples) == 0 or len(val_samples) == 0:
        raise ValueError(f"empty training ({len(train_samples)}) or validation ({len(val_samples)}) set")
    loss_fn = get_loss(settings.loss if loss is None else loss)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    model.to(device)
    acc = accelerate(model, device, settings.amp_bf16, settings.compile)
    for note in acc.notes:
        print(note)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = make_scheduler(opt, settings)
    run_id = run_id or json.dumps(settings.run_key(), sort_keys=True)
    state = {"epoch": 0, "best_loss": float("inf"), "best_epoch": 0, "history": [], "run_id": run_id}
    ckpt = load_run(out / "last.pt", run_id, device, extends)
    if ckpt is not None:  # resume the same run
        model.load_state_dict(ckpt["model"])
        if ckpt.get("optimizer") is not None:  # None once in the L-BFGS phase
            opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler") is not None:
            sched.load_state_dict(ckpt["scheduler"])
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"])
        state = ckpt["state"]
    tb = TensorBoard(out, settings.tensorboard, first_epoch=state["epoch"] + 1)
    t0 = time.perf_counter()
    epochs_now = 0
    bar = tqdm(total=settings.max_epochs, initial=state["epoch"], desc="train", unit="epoch",
               disable=not progress)
    while (state["epoch"] < settings.max_epochs and state["epoch"] - state["best_epoch"] < settings.patience
           and not state.get("lbfgs_epochs", 0)):
        t_epoch = time.perf_counter()
        epoch = state["epoch"] + 1
        lr = opt.param_groups[0]["lr"]
        acc.module.train()
        total, n = 0.0, 0
        for batch in iterate_batches(train_samples, settings.batch_size, collate,
                                     epoch_order(len(train_samples), settings.seed, epoch)):
            batch = to_device(batch, device)
            opt.zero_grad(set_to_none=True)
            with acc.autocast():
                pred, y = forward(acc.module, batch)
            loss_b = loss_fn(_float(pred), _float(y))
            loss_b.backward()
            opt.step()
            b = batch_len(y)
            total += loss_b.item() * b
            n += b
        val_loss = evaluate_loss(acc.module, val_samples, collate, eval_batch_size, device,
                                 loss_fn, forward, acc.autocast)
        if sched is not None:
            sched.step()
        state["epoch"] = epoch
        row = {"epoch": epoch, "train_loss": total / n, "val_loss": val_loss, "lr": lr,
               "seconds": time.perf_counter() - t_epoch}
        state["history"].append(row)
        if val_loss < state["best_loss"]:
            state["best_loss"], state["best_epoch"] = val_loss, epoch
            save_atomic({"model": model.state_dict(), "epoch": epoch}, out / "best.pt")
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": None if sched is None else sched.state_dict(),
                     "rng": rng_state(), "state": state}, out / "last.pt")
        write_history(out / "history.csv", state["history"])
        tb.log(row)
        bar.update(1)
        bar.set_postfix(train=f"{row['train_loss']:.2e}", val=f"{val_loss:.2e}", best=state["best_epoch"])
        epochs_now += 1
        if stop_after_epochs is not None and epochs_now >= stop_after_epochs:
            bar.close()
            tb.close()
            return {"finished": False, **_summary(state, settings, device, t0, acc.notes)}
    bar.close()
    if settings.lbfgs_epochs and state.get("lbfgs_epochs", 0) < settings.lbfgs_epochs:
        done = _lbfgs_phase(model, acc, train_samples, val_samples, collate, settings, out, state, ckpt, loss_fn,
                            forward, device, eval_batch_size, tb, stop_after_epochs, epochs_now)
        if not done:
            tb.close()
            return {"finished": False, **_summary(state, settings, device, t0, acc.notes)}
    tb.close()
    write_history(out / "history.csv", state["history"])
    best = torch.load(out / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best["model"])
    summary = {"finished": True, **_summary(state, settings, device, t0, acc.notes)}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    return summary


def _lbfgs_phase(model, acc, train_samples, val_samples, collate, settings, out, state, ckpt, loss_fn, forward,
                 device, eval_batch_size, tb, stop_after_epochs, epochs_now) -> bool:
    """Full-batch L-BFGS epochs after the Adam ones (``settings.lbfgs_epochs``; each one
    ``torch.optim.LBFGS.step`` of up to ``lbfgs_max_iter`` iterations, strong-Wolfe line search),
    checkpointed like the Adam epochs (``last.pt`` holds the L-BFGS state). Returns False when
    ``stop_after_epochs`` ended the call early."""
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=settings.lbfgs_max_iter, history_size=50,
                              line_search_fn="strong_wolfe")
    if ckpt is not None and ckpt.get("lbfgs") is not None and ckpt["state"].get("lbfgs_epochs", 0):
        lbfgs.load_state_dict(ckpt["lbfgs"])
    full = to_device(collate(fetch(train_samples, np.arange(len(train_samples)))), device)
    state.setdefault("lbfgs_epochs", 0)

    def closure():
        lbfgs.zero_grad(set_to_none=True)
        with acc.autocast():
            pred, y = forward(acc.module, full)
        value = loss_fn(_float(pred), _float(y))
        value.backward()
        return value

    while state["lbfgs_epochs"] < settings.lbfgs_epochs:
        t_epoch = time.perf_counter()
        acc.module.train()
        train_loss = float(lbfgs.step(closure).detach())  # loss before this step's iterations
        val_loss = evaluate_loss(acc.module, val_samples, collate, eval_batch_size, device, loss_fn, forward,
                                 acc.autocast)
        state["epoch"] += 1
        state["lbfgs_epochs"] += 1
        row = {"epoch": state["epoch"], "train_loss": train_loss, "val_loss": val_loss, "lr": float("nan"),
               "seconds": time.perf_counter() - t_epoch}
        state["history"].append(row)
        if val_loss < state["best_loss"]:
            state["best_loss"], state["best_epoch"] = val_loss, state["epoch"]
            save_atomic({"model": model.state_dict(), "epoch": state["epoch"]}, out / "best.pt")
        save_atomic({"model": model.state_dict(), "optimizer": None, "scheduler": None, "lbfgs": lbfgs.state_dict(),
                     "rng": rng_state(), "state": state}, out / "last.pt")
        write_history(out / "history.csv", state["history"])
        tb.log(row)
        epochs_now += 1
        if stop_after_epochs is not None and epochs_now >= stop_after_epochs:
            return False
    return True


def _summary(state, settings, device, t0, notes) -> dict:
    adam_epochs = state["epoch"] - state.get("lbfgs_epochs", 0)
    stopped = "max_epochs" if adam_epochs >= settings.max_epochs else "early_stopping"
    return {"epochs": state["epoch"], "adam_epochs": adam_epochs, "lbfgs_epochs": state.get("lbfgs_epochs", 0),
            "best_epoch": state["best_epoch"],
            "best_val_loss": state["best_loss"], "stopped_by": stopped, "device": str(device),
            "seconds_this_call": time.perf_counter() - t0,
            "seconds_total": float(sum(r["seconds"] for r in state["history"])),
            "notes": list(notes), "settings": settings.to_dict()}
