"""The training stack shared by every model: settings from config, the trainer (checkpoints,
exact resume, early stopping, schedules), losses, batching and the saved model record.

    from homlearn.train import TrainSettings, train, collate_tensors, run_id, save_model_record
"""

from homlearn.train.batches import collate_tensors, default_forward
from homlearn.train.losses import LOSSES, get_loss, relative_l2
from homlearn.train.record import fingerprint, run_id, save_model_record, store_fingerprint
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import evaluate_loss, pick_device, predict, train

__all__ = ["TrainSettings", "train", "evaluate_loss", "predict", "pick_device", "collate_tensors",
           "default_forward", "LOSSES", "get_loss", "relative_l2", "fingerprint", "store_fingerprint",
           "run_id", "save_model_record"]
