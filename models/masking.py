"""Masks for batches of zero-padded inputs of different lengths (exact mixed-length batching).

A model given `lengths` (the true length of each row of a zero-padded batch) must return,
for every row, what it returns for that row's input alone. Each layer whose output would
see the padding is therefore masked with these helpers: before a convolution the padded
frames are re-zeroed (the unpadded computation reads zeros there: its own zero padding),
maxima and means over time and softmaxes over nodes or frames ignore padded positions.
"""
from __future__ import annotations

import torch
from torch import Tensor


def frames_valid(counts: Tensor, size: int) -> Tensor:
    """`(B, size)` booleans: position t of row b is data, `t < counts[b]`."""
    return torch.arange(size, device=counts.device) < counts[:, None]


def zero_beyond(x: Tensor, counts: Tensor | int | None, dim: int = -1) -> Tensor:
    """Zero, in place, the positions of `x` at or beyond `counts[b]` along `dim` in row b.

    `counts` is a `(B,)` tensor, or one int for every row (None: nothing to zero)."""
    if counts is None:
        return x
    dim = dim % x.dim()
    if isinstance(counts, int):
        if counts < x.shape[dim]:
            x.narrow(dim, counts, x.shape[dim] - counts).zero_()
        return x
    shape = [1] * x.dim()
    shape[0], shape[dim] = x.shape[0], x.shape[dim]
    return x.masked_fill_(~frames_valid(counts, x.shape[dim]).view(shape), 0)



def common_length(waves: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """`(waves, lengths)` with the padding cut off where every row has one length (then
    `lengths` is None and the batch goes the equal-length way); as given otherwise."""
    if lengths is None:
        return waves, None
    lengths = torch.as_tensor(lengths, device=waves.device)
    if lengths.shape != waves.shape[:1]:
        raise ValueError(f"lengths of shape {tuple(lengths.shape)} for a batch of {waves.shape[0]}")
    if bool((lengths < 1).any()) or bool((lengths > waves.shape[-1]).any()):
        raise ValueError(f"lengths must lie in [1, {waves.shape[-1]}] (the padded width)")
    if bool((lengths == lengths[0]).all()):
        return waves[:, : int(lengths[0])], None
    return waves, lengths.long()
