"""One optimizer step of a Trainer on one batch, as the benchmarks time it (no accumulation, no DDP)."""


def train_step(trainer, batch):
    """Forward under the trainer's autocast, scaled backward, optimizer step; returns the loss tensor."""
    with trainer._autocast():
        loss = trainer.step_module(batch)
    trainer.scaler.scale(loss).backward()
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.optimizer.zero_grad(set_to_none=True)
    return loss
