"""``eval``: full-ranking metrics, the subsets of test users, and how the model is chosen on validation."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import _check

SUBSETS = ("all", "warm", "cold", "new")  # evaluation subsets of test users, by the target's training count


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [10])  # cut-offs K of HR@K and NDCG@K
    select_metric: str = "ndcg@10"  # validation metric used for early stopping and model choice
    mask_history: bool = True  # the user's earlier items cannot be recommended (the target itself never masked)
    user_batch: int = 1024  # users scored per evaluation batch (memory: user_batch x n_items scores)
    # Test users grouped by their target's training interactions: new = 0, cold = 1..cold_threshold-1,
    # warm = the rest, all = everyone (paper Table 9: cold < 10). Reported from the one trained model.
    subsets: list[str] = field(default_factory=lambda: ["all", "cold", "new"])
    cold_threshold: int = 10
    # Validation cadence (model selection): epochs before valid_from are not validated; from there every
    # valid_every-th epoch is, and the last epoch always. Patience counts epochs either way.
    valid_from: int = 0
    valid_every: int = 1
    # valid_users > 0: per-epoch selection sees a fixed random subsample of that many users (drawn with
    # train.seed); the chosen model is then validated on every user once. results.json "selection" says which.
    valid_users: int = 0

    def validate(self) -> None:
        _check(all(k > 0 for k in self.ks), "eval.ks must be positive")
        _check(self.valid_from >= 0, f"eval.valid_from must be >= 0, got {self.valid_from}")
        _check(self.valid_every >= 1, f"eval.valid_every must be >= 1, got {self.valid_every}")
        _check(self.valid_users >= 0, f"eval.valid_users must be >= 0 (0 = every user), got {self.valid_users}")
        _check(all(s in SUBSETS for s in self.subsets), f"eval.subsets must be among {', '.join(SUBSETS)}, not {self.subsets}")
        _check(self.cold_threshold >= 1, "eval.cold_threshold must be >= 1")
        name, _, k = self.select_metric.partition("@")
        _check(name in ("hr", "ndcg") and k.isdigit() and int(k) in self.ks, f"eval.select_metric {self.select_metric!r} must be hr@K or ndcg@K with K in eval.ks {self.ks}")
