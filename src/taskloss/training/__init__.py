"""Training: the Fabric engine, tasks, run settings, checkpoints and logs."""

from taskloss.training.config import OptimizerConfig, TrainingConfig
from taskloss.training.engine import FitResult, Trainer, make_fabric
from taskloss.training.task import SupervisedTask, TrainingTask

__all__ = ["FitResult", "OptimizerConfig", "SupervisedTask", "Trainer", "TrainingConfig", "TrainingTask",
           "make_fabric"]
