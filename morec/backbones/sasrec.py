"""SASRec (Kang & McAuley 2018) as the paper uses it: learned positions, causal self-attention,
2 blocks x 2 heads, dropout 0.1, every position predicts the next item (seq2seq training)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import FastDropout
from .base import Backbone


class SelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float, fused: bool = False):
        super().__init__()
        self.n_heads, self.dropout, self.fused = n_heads, dropout, fused
        self.attn_drop = FastDropout(dropout)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, dh)
        if self.training and self.dropout and not x.is_cuda and not self.fused:
            # CPU: explicit attention so the weights' dropout uses the cheap mask
            att = (q @ k.transpose(-2, -1)) * (k.shape[-1] ** -0.5)
            att = self.attn_drop(att.masked_fill(~attn_mask, float("-inf")).softmax(-1))
            y = att @ v  # (B, h, L, dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, L, d))


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float, ffn_mult: int = 4, fused: bool = False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, n_heads, dropout, fused)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), FastDropout(dropout), nn.Linear(ffn_mult * dim, dim))
        self.drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), attn_mask))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRec(Backbone):
    uses_history = True
    causal = True  # BERT4Rec reuses this stack with attention in both directions

    def __init__(self, dim: int, max_len: int, n_layers: int = 2, n_heads: int = 2, dropout: float = 0.1,
                 ffn_mult: int = 4, attention: str = "auto"):
        super().__init__()
        self.max_len = max_len
        self.position = nn.Embedding(max_len, dim)
        self.ln_in = nn.LayerNorm(dim)
        self.drop = FastDropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, n_heads, dropout, ffn_mult, attention == "fused") for _ in range(n_layers))
        self.ln_out = nn.LayerNorm(dim)
        nn.init.normal_(self.position.weight, std=0.02)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, d) input vectors, right-aligned; mask: (B, L) True where a real item stands. -> (B, L, d)"""
        B, L, _ = x.shape
        x = self.drop(self.ln_in(x + self.position.weight[self.max_len - L:]))  # the latest item sits at the last slot
        visible = mask[:, None, :]  # (B, 1, L): which keys each query may see
        if self.causal:
            visible = visible & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        # A position always sees itself (a padded query with no visible key would give NaN).
        attn_mask = (visible | torch.eye(L, dtype=torch.bool, device=x.device))[:, None]  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln_out(x)

    def forward(self, history: torch.Tensor, mask: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        # history: (B, L, d) item vectors, left-padded
        return self.encode(history, mask)


def build(cfg, dataset) -> SASRec:
    return SASRec(cfg.dim, cfg.max_len, cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.ffn_mult, cfg.attention)
