"""The item encoder interface: item indices -> vectors. The only part that differs between IDRec and MoRec."""
from __future__ import annotations

import torch
from torch import nn


class ItemEncoder(nn.Module):
    """Maps item indices (1..n_items; 0 = padding is never passed in) to vectors of size ``dim``.

    Subclasses implement :meth:`forward`. They may override :meth:`encoder_parameters` to name the
    parameters that take the encoder's own learning rate (a pretrained text or vision model), and
    :meth:`on_epoch_start` to refresh caches of frozen layers.
    """

    dim: int

    def forward(self, items: torch.Tensor) -> torch.Tensor:  # (N,) -> (N, dim)
        raise NotImplementedError

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with ``model.encoder.lr`` / ``weight_decay`` instead of the recommender's."""
        return []

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def precompute(self, progress: bool = True) -> list[str]:
        """Compute what the encoder computes once over every item (frozen features, cached lower layers) now,
        before the first epoch, so that epochs time training alone; returns what was computed ([] = nothing)."""
        return []

    def encode_content(self, items, **options):  # pandas.DataFrame -> (N, dim) Tensor
        """Vectors for items given by their raw content (text fields, image paths or bytes), e.g. items never
        seen in training. Only content encoders (MoRec) can; an encoder whose vectors are looked up by
        item index (an ID embedding) has nothing to compute a new item's vector from. ``options`` say how
        raw content may be read (image_root, confine_images, max_image_pixels); an encoder ignores those it
        has no use for."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot encode items from their content: its item vectors exist only for "
            "the items seen in training; adding items without retraining needs a content (text or vision) encoder")
