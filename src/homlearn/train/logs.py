"""Training logs: ``history.csv`` rewritten every epoch, TensorBoard when installed."""

from __future__ import annotations

import csv
import os
from pathlib import Path

#: columns of history.csv (val_loss: the early-stopping set, heat2d's 'test' split)
HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "lr", "seconds"]


def write_history(path: Path | str, history: list[dict]) -> None:
    """Write every epoch so far (atomically: the file always matches a checkpoint)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def read_history(path: Path | str) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)]


class TensorBoard:
    """Scalars per epoch under ``out/tensorboard``; does nothing when TensorBoard is missing."""

    def __init__(self, out_dir: Path | str, enabled: bool = True, first_epoch: int = 1):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: skip silently
            return
        # purge_step drops events of epochs a killed run logged after its last checkpoint
        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=first_epoch)

    def log(self, row: dict) -> None:
        if self.writer is not None:
            for key in ("train_loss", "val_loss", "lr", "seconds"):
                self.writer.add_scalar(key, row[key], row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
