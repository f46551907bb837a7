"""Training settings: one dataclass, read from a config's ``train`` block (schema ``$defs/train``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

#: keys that change how a run is logged or placed, not what it computes (left out of run ids)
NOT_IN_RUN_ID = ("tensorboard", "gpu")


@dataclass(frozen=True)
class TrainSettings:
    """What :func:`homlearn.train.trainer.train` does; defaults = schema defaults (paper gcnn sec. 6)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "none"        # none | cosine (annealing from lr to 0 over max_epochs)
    loss: str = "mse"             # mse | relative_l2
    batch_size: int = 32
    max_epochs: int = 1000
    patience: int = 100
    seed: int = 0
    device: str = "auto"          # auto | cpu | cuda
    amp_bf16: bool = False        # CUDA only
    compile: bool = False         # CUDA only
    tensorboard: bool = True      # when installed
    gpu: int = 1                  # GPUs the Snakemake rule requests (resource 'gpu'); unused here
    lbfgs_epochs: int = 0         # full-batch L-BFGS epochs after the Adam epochs (0: none)
    lbfgs_max_iter: int = 20      # L-BFGS iterations per such epoch

    def __post_init__(self):
        from homlearn.train.losses import LOSSES

        if self.schedule not in ("none", "cosine"):
            raise ValueError(f"training key 'schedule': {self.schedule!r} is not one of ['none', 'cosine']")
        if self.loss not in LOSSES:
            raise ValueError(f"training key 'loss': {self.loss!r} is not one of {sorted(LOSSES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"training key 'device': {self.device!r} is not one of ['auto', 'cpu', 'cuda']")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None = None) -> "TrainSettings":
        """Validate ``cfg`` against the schema's ``$defs/train`` (defaults filled, unknown keys
        refused with their names) and build the settings."""
        from homlearn.config import check_schema, load_schema

        schema = load_schema()
        wrapper = {"type": "object", "additionalProperties": False, "$defs": schema["$defs"],
                   "properties": {"train": {"$ref": "#/$defs/train", "default": {}}}}
        checked = check_schema({"train": dict(cfg or {})}, wrapper)["train"]
        return cls(**checked)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_key(self) -> dict[str, Any]:
        """The settings that decide the result (what a resumed checkpoint must match)."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_IN_RUN_ID}

    def shorter_runs(self) -> list["TrainSettings"]:
        """The same run with 0 .. lbfgs_epochs - 1 L-BFGS epochs: the L-BFGS phase is sequential
        and its state is checkpointed, so this run continues any of their checkpoints exactly."""
        return [replace(self, lbfgs_epochs=j) for j in range(self.lbfgs_epochs)]


def setting_names() -> list[str]:
    return [f.name for f in fields(TrainSettings)]
