"""What a run logs as it trains: ``metrics.jsonl`` (one record per epoch), ``steps.jsonl`` (one record every
``train.log_every`` optimizer steps) and TensorBoard event files mirroring both in the run directory.

The JSON lines are the source of truth; each record is written to them and to TensorBoard from the same dict,
so ``tensorboard --logdir runs/`` shows exactly what the files hold (all runs of a sweep side by side). Every
value is logged against the optimizer step, so a resumed run continues one x axis: its writer is opened with
``purge_step`` = the checkpoint's step + 1, which tells TensorBoard to drop what the interrupted process logged
after the checkpoint, and ``steps.jsonl`` is cut back to the same step, so nothing appears twice.

TensorBoard is optional (``pip install 'morec[tensorboard]'``); without it the JSON lines are written alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .checkpoint import atomic_write_text

EVENTS_GLOB = "events.out.tfevents.*"


def tensorboard_tag(key: str) -> str:
    """The TensorBoard tag of a record field: ``valid_ndcg@10`` -> ``valid/ndcg@10``, ``loss`` -> ``epoch/loss``;
    step fields are named with their tag already (``train/loss``, ``lr/decay``, ...)."""
    if "/" in key:
        return key
    if key.startswith("valid_"):
        return "valid/" + key[len("valid_"):]
    return "epoch/" + key


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a last line cut short by a crash is dropped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


class RunLog:
    """Opened by the training loop's main process for one ``fit()``; ``close()`` flushes everything."""

    def __init__(self, out: Path, epoch_records: list[dict], step: int, resumed: bool, tensorboard: bool,
                 log: Callable[[str], None] = print):
        self.out = out
        # metrics.jsonl is rewritten from the checkpoint's records (the authority on finished epochs);
        # steps.jsonl keeps what was logged up to the checkpoint's step
        atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in epoch_records))
        steps = [r for r in read_jsonl(out / "steps.jsonl") if r.get("step", 0) <= step] if resumed else []
        atomic_write_text(out / "steps.jsonl", "".join(json.dumps(r) + "\n" for r in steps))
        self.metrics = open(out / "metrics.jsonl", "a", encoding="utf-8")
        self.steps = open(out / "steps.jsonl", "a", encoding="utf-8")
        self.writer = None
        if not resumed:  # a restarted run's old curves are not this run's
            for f in out.glob(EVENTS_GLOB):
                f.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log("tensorboard is not installed: no event files are written (pip install 'morec[tensorboard]'; "
                    "or set train.tensorboard=false)")
            else:
                self.writer = SummaryWriter(str(out), purge_step=step + 1 if resumed else None, flush_secs=30)

    def _scalars(self, record: dict, step: int) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tensorboard_tag(key), value, step)

    def step(self, record: dict) -> None:
        """A step record: ``{"step": s, "epoch": e, "train/loss": ..., "lr/<group>": ..., ...}``."""
        self.steps.write(json.dumps(record) + "\n")
        self._scalars(record, record["step"])

    def epoch(self, record: dict) -> None:
        """An epoch record (``{"epoch": e, "step": s, "loss": ..., "valid_<metric>": ...}``), at the step it ended."""
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        self.steps.flush()
        self._scalars(record, record["step"])
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.metrics.close()
        self.steps.close()
        if self.writer is not None:
            self.writer.close()


def capped(results: dict) -> bool:
    """The run hit its epoch cap while validation was still rising: its best validated epoch was its last one.
    A schedule that ends at the cap by design (cosine) after validation stopped rising is not capped. Runs
    saved before ``valid_rising_at_cap`` was recorded: best epoch = last epoch run (0-based) at the cap."""
    if results.get("stop_reason") != "epochs":
        return False
    if "valid_rising_at_cap" in results:
        return bool(results["valid_rising_at_cap"])
    last = results.get("epochs_run") or (results.get("config") or {}).get("train", {}).get("epochs")
    return last is not None and results.get("best_epoch") == int(last) - 1
