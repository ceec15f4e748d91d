"""A run's whole config: the prepared dataset, the run directory, and the model, train and eval sections."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import _check
from .evaluation import EvalConfig
from .model import ModelConfig
from .training import TrainConfig


@dataclass
class Config:
    data: str = ""  # prepared dataset directory
    out: str = "runs/run"  # run directory
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "Config":
        _check(bool(self.data), "data: the prepared dataset directory must be set (morec data prepare makes one)")
        self.model.validate()
        self.train.validate()
        self.eval.validate()
        return self
