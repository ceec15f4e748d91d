"""Pieces shared by every modality encoder (text, vision): the paper's DT-layer, the TS-DNN MLP, and
ID + modality fusion (the paper's Table 7), which wraps any modality encoder."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import ConfigError, EncoderConfig
from .base import ItemEncoder


class DTLayer(nn.Sequential):
    """Dense layer + GELU: maps a modality encoder's hidden size to the recommender's size."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, out_dim), nn.GELU())


def mlp(dim: int, n_layers: int) -> nn.Module:
    """``n_layers`` x (Linear + GELU) at constant width: TS-DNN's extra layers on frozen features."""
    if n_layers == 0:
        return nn.Identity()
    return nn.Sequential(*[m for _ in range(n_layers) for m in (nn.Linear(dim, dim), nn.GELU())])


class ModalityHead(nn.Module):
    """What sits between a modality backbone's pooled output and the recommender: DT-layer, then the
    optional MLP layers."""

    def __init__(self, in_dim: int, dim: int, mlp_layers: int = 0):
        super().__init__()
        self.dt = DTLayer(in_dim, dim)
        self.mlp = mlp(dim, mlp_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in_dim) -> (N, dim)
        return self.mlp(self.dt(x))


class FusedEncoder(ItemEncoder):
    """ID embedding combined with a modality encoder's vector.

    ``add``: both are ``dim`` wide and summed. ``concat``: the ID part is ``dim // 2`` wide and the
    modality part the rest, so the result is ``dim`` wide with no extra projection, which is what
    "concatenation without MLP" means. ``fusion_mlp`` adds Linear + GELU after either.
    """

    def __init__(self, modality: ItemEncoder, n_items: int, id_dim: int, how: str, fusion_mlp: bool):
        super().__init__()
        self.modality, self.how = modality, how
        self.dim = id_dim if how == "add" else id_dim + modality.dim
        if how == "add" and modality.dim != id_dim:
            raise ValueError(f"add fusion needs equal sizes, got ID {id_dim} and modality {modality.dim}")
        self.id_embedding = nn.Embedding(n_items + 1, id_dim, padding_idx=0)
        nn.init.normal_(self.id_embedding.weight, std=id_dim ** -0.5)  # as IDRec's embedding
        with torch.no_grad():
            self.id_embedding.weight[0].zero_()
        self.after = nn.Sequential(nn.Linear(self.dim, self.dim), nn.GELU()) if fusion_mlp else nn.Identity()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        ids, mo = self.id_embedding(items), self.modality(items)
        fused = ids + mo if self.how == "add" else torch.cat([ids, mo], dim=-1)
        return self.after(fused)

    # the wrapped encoder's pretrained parameters and caches stay its own business
    def encoder_parameters(self) -> list[nn.Parameter]:
        return self.modality.encoder_parameters()

    def on_epoch_start(self, epoch: int) -> None:
        self.modality.on_epoch_start(epoch)

    def precompute(self, progress: bool = True) -> list[str]:
        return self.modality.precompute(progress)


def with_fusion(cfg: EncoderConfig, n_items: int, dim: int,
                build_modality: Callable[[int], ItemEncoder]) -> ItemEncoder:
    """The modality encoder built at the width fusion leaves it, wrapped in fusion if configured.

    ``build_modality(width)`` builds any modality encoder whose output is ``width`` wide.
    """
    if cfg.fusion == "none":
        return build_modality(dim)
    if cfg.fusion == "concat":
        if dim < 2:
            raise ConfigError(f"model.encoder.fusion=concat needs model.dim >= 2, got {dim}")
        id_dim = dim // 2
        return FusedEncoder(build_modality(dim - id_dim), n_items, id_dim, "concat", cfg.fusion_mlp)
    return FusedEncoder(build_modality(dim), n_items, dim, "add", cfg.fusion_mlp)
