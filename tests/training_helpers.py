"""Training shared by the encoder tests: several arms on one synthetic world, each fitted to the end."""
from morec.train import Trainer, compute_loss, make_optimizer


def fit_arms(world, run_config, arms: dict[str, list[str]]) -> dict:
    """{name: (results, trained model)} for each arm's overrides (patience never stops these short runs)."""
    runs = {}
    for name, extra in arms.items():
        trainer = Trainer(run_config(world, world["root"] / f"run-{name}", "--train.patience=100", *extra),
                          world["ds"], log=lambda s: None)
        runs[name] = (trainer.fit(), trainer.model)
    return runs


def loss_and_grads_with_and_without_dedup(model, batch) -> list[tuple[float, dict]]:
    """The BCE loss and every gradient, first with each distinct item encoded once, then once per position."""
    results = []
    for dedup in (True, False):
        model.dedup = dedup
        model.zero_grad()
        loss = compute_loss(model, batch, "bce")
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    return results


def encoder_param_group(trainer, cfg) -> dict:
    """The optimizer's parameter group that holds exactly the item encoder's pretrained parameters."""
    enc_ids = {id(p) for p in trainer.model.item_encoder.encoder_parameters()}
    (group,) = [g for g in make_optimizer(trainer.model, cfg).param_groups if {id(p) for p in g["params"]} == enc_ids]
    return group


def train_tiny_vision_run(prepared, root, log=lambda s: None):
    """A tiny vision MoRec SASRec on ``prepared`` (a random 2-stage ResNet saved under ``root``, frozen features,
    one epoch) in ``root / "run"``; torch's thread count is put back as it was."""
    import torch
    from transformers import ResNetConfig, ResNetModel

    from morec.config import load_config
    from morec.train import train

    torch.manual_seed(0)
    ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic")).save_pretrained(root / "resnet")
    cfg = load_config(None, [f"--data={prepared}", f"--out={root / 'run'}", "--model.dim=16",
                             "--model.max_len=8", "--model.encoder.kind=vision", "--model.encoder.vision.image_size=32",
                             f"--model.encoder.pretrained={root / 'resnet'}", "--model.encoder.mode=frozen",
                             "--train.epochs=1", "--train.progress=false", "--train.threads=1",
                             "--train.checkpoints=false"])
    before = torch.get_num_threads()
    try:
        train(cfg, log=log)
    finally:
        torch.set_num_threads(before)
    return root / "run"
