"""AASIST (Jung et al., ICASSP 2022): spectro-temporal graph attention on raw waveforms.

A re-implementation of the clovaai/aasist model (trained by stage 0, run by stages 1 and 3), parameter-for-parameter
compatible with its checkpoints (`strict=True`). It reads top to bottom like the paper's
figure: sinc front-end -> residual encoder -> spectral and temporal graphs -> two
heterogeneous graph branches with a master node -> readout (the 160-dim embedding) ->
output layer. The graph part, `GraphBackend`, is shared with SSL-AASIST (models/ssl_aasist.py).

Two behaviours of the original are kept on purpose, because the checkpoints were trained
with them: the residual block's first convolution reads the block input, not its
pre-activation (so `bn1` is a no-op at inference), and the heterogeneous layers receive
the un-expanded master parameter.

Inference in eval mode takes a faster route with the same outputs up to float32 rounding
(`AASIST.optimized`, on by default; set it to False for the plain layer-by-layer forward):
the encoder runs channels-last (its poolings then read contiguous memory), each block's
BatchNorm is folded into the convolution before it at forward time (the state dict keeps
the original parameters and keys), the single-channel convolutions of the first block are
small matrix products that write channels-last directly, the front-end's (3, 3) pooling is
a 1-D pooling over time and a maximum over filter triples, and the time axis is padded to
shared lengths (`AASIST.bucket`). About x2.7 on CPU (benchmarks/bench_extraction.py --ablation).

Exact mixed-length batching (`forward(waves, lengths)`, both routes, eval mode): rows of
different lengths, zero-padded, each give the embedding of that row alone (up to float32
rounding). Every encoder convolution's input has the padded frames of its row re-zeroed
(what the unpadded computation's zero padding reads), the temporal nodes beyond a row's
frames take no part in the graph attention (masked softmax), the graph pooling keeps the
top `ratio` of each row's own nodes (its real nodes first, in the order the unpadded
computation keeps them) and the readout's maximum and mean run over a row's nodes only.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .masking import common_length, frames_valid, zero_beyond

_CL = torch.channels_last


def _sinc_filters(out_channels: int, kernel_size: int, sample_rate: int) -> Tensor:
    """Fixed mel-spaced band-pass filters of the original `CONV` layer, (out, 1, kernel)."""
    to_mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731
    to_hz = lambda mel: 700 * (10 ** (mel / 2595) - 1)  # noqa: E731
    nfft = 512
    f = int(sample_rate / 2) * np.linspace(0, 1, int(nfft / 2) + 1)
    fmel = to_mel(f)
    edges = to_hz(np.linspace(np.min(fmel), np.max(fmel), out_channels + 1))
    # float32 support, as the original builds it with torch.arange
    hsupp = torch.arange(-(kernel_size - 1) / 2, (kernel_size - 1) / 2 + 1).numpy()
    window = torch.tensor(np.hamming(kernel_size), dtype=torch.float32)
    bank = torch.zeros(out_channels, kernel_size)
    for i in range(out_channels):
        fmin, fmax = edges[i], edges[i + 1]
        h_high = (2 * fmax / sample_rate) * np.sinc(2 * fmax * hsupp / sample_rate)
        h_low = (2 * fmin / sample_rate) * np.sinc(2 * fmin * hsupp / sample_rate)
        bank[i, :] = window * torch.tensor(h_high - h_low, dtype=torch.float32)
    return bank.view(out_channels, 1, kernel_size)


class SincConv(nn.Module):
    """Fixed sinc band-pass filterbank (no learnable parameters, nothing in the state dict)."""

    def __init__(self, out_channels: int, kernel_size: int, sample_rate: int = 16000):
        super().__init__()
        if kernel_size % 2 == 0:
            kernel_size += 1
        self.kernel_size = kernel_size
        self.register_buffer("filters", _sinc_filters(out_channels, kernel_size, sample_rate),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.filters)


class ResidualBlock(nn.Module):
    """AASIST's residual block; `pool`: the (1, 3) max-pooling over time at its end (SSL-AASIST's
    blocks keep the time resolution)."""

    def __init__(self, channels: tuple[int, int], first: bool = False, pool: bool = True):
        super().__init__()
        c_in, c_out = channels
        self.first = first
        self.pool = pool
        if not first:
            self.bn1 = nn.BatchNorm2d(c_in)  # trained but unused at inference (see module doc)
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=(2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=(2, 3), padding=(0, 1))
        self.conv_downsample = (nn.Conv2d(c_in, c_out, kernel_size=(1, 3), padding=(0, 1))
                                if c_in != c_out else None)

    def forward(self, x: Tensor, width: Tensor | None = None) -> Tensor:
        """With `width` (B,), only the first `width[b]` time steps of row b are data; its
        output's first `width[b] // 3` are then those of the data alone."""
        zero_beyond(x, width)
        out = zero_beyond(F.selu(self.bn2(self.conv1(x))), width)
        out = self.conv2(out)
        identity = x if self.conv_downsample is None else self.conv_downsample(x)
        return F.max_pool2d(out + identity, (1, 3)) if self.pool else out + identity

    def forward_fast(self, x: Tensor, width: int | Tensor | None = None) -> Tensor:
        """`forward` at inference, channels-last in and out: bn2 folded into conv1, in-place
        activation and residual sum, the pooling on contiguous channels-last memory. With
        `width` (an int, or one per row), only the first `width` time steps of `x` are data
        and the rest padding; the output's first `width // 3` are then exactly `forward`'s
        on the data alone."""
        zero_beyond(x, width)  # what the convolutions' own zero padding would read
        bn = self.bn2
        weight, bias = fuse_conv_bn_weights(self.conv1.weight, self.conv1.bias, bn.running_mean, bn.running_var,
                                            bn.eps, bn.weight, bn.bias)
        bias2 = self.conv2.bias
        if x.shape[1] == 1:  # single input channel: im2col products, channels-last outputs
            out = _single_channel_conv(x, weight, bias, padding=(1, 1))
            identity = x
            if self.conv_downsample is not None:  # its bias joins conv2's
                identity = _single_channel_conv(x, self.conv_downsample.weight, None, padding=(0, 1))
                bias2 = bias2 + self.conv_downsample.bias
        else:
            out = F.conv2d(_channels_last(x), weight, bias, padding=(1, 1))
            identity = x if self.conv_downsample is None else self.conv_downsample(_channels_last(x))
        out = zero_beyond(F.selu(_channels_last(out), inplace=True), width)
        out = F.conv2d(out, self.conv2.weight, bias2, padding=(0, 1))
        out = _channels_last(out).add_(identity)
        return F.max_pool2d(out, (1, 3))


def _channels_last(x: Tensor) -> Tensor:
    return x if x.is_contiguous(memory_format=_CL) else x.contiguous(memory_format=_CL)


def _single_channel_conv(x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
    """`F.conv2d(x, weight, bias, padding=padding)` for one input channel `(B, 1, H, W)`, as a
    product of the (kernel-sized) patches with the filters, returned channels-last."""
    batch, _, height, width = x.shape
    k_h, k_w = weight.shape[-2:]
    p_h, p_w = padding
    xp = F.pad(x[:, 0], (p_w, p_w, p_h, p_h))
    h_out, w_out = height + 2 * p_h - k_h + 1, width + 2 * p_w - k_w + 1
    patches = torch.stack([xp[:, i:i + h_out, j:j + w_out] for i in range(k_h) for j in range(k_w)], dim=-1)
    patches, filters = patches.view(-1, k_h * k_w), weight.reshape(weight.shape[0], -1).t()
    out = torch.mm(patches, filters) if bias is None else torch.addmm(bias, patches, filters)
    return out.view(batch, h_out, w_out, -1).permute(0, 3, 1, 2)  # (B, C, H, W), channels-last


def _attention_weight(dim: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(dim, 1))


def _node_bn(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    shape = x.shape
    return bn(x.reshape(-1, shape[-1])).view(shape)


class GraphAttentionLayer(nn.Module):
    """Graph attention over one node type; `dropout` applies to the input nodes in training."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float, dropout: float = 0.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _attention_weight(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.temp = temperature
        self.dropout = dropout

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """`valid` (B, N): which nodes are real (None: all); padded nodes get no attention."""
        x = F.dropout(x, self.dropout, self.training) if self.dropout else x
        pairs = x.unsqueeze(2) * x.unsqueeze(1)  # (B, N, N, D)
        att = torch.matmul(torch.tanh(self.att_proj(pairs)), self.att_weight) / self.temp
        if valid is not None:  # softmax over the attended node j of att[b, i, j]
            att = att.masked_fill(~valid[:, None, :, None], -math.inf)
        att = F.softmax(att, dim=-2).squeeze(-1)
        x = self.proj_with_att(torch.matmul(att, x)) + self.proj_without_att(x)
        return F.selu(_node_bn(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention over temporal (type 1) and spectral (type 2) nodes;
    `dropout` applies to the projected nodes in training."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float, dropout: float = 0.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _attention_weight(out_dim)
        self.att_weight22 = _attention_weight(out_dim)
        self.att_weight12 = _attention_weight(out_dim)
        self.att_weightM = _attention_weight(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.temp = temperature
        self.dropout = dropout

    def forward(self, x1: Tensor, x2: Tensor, master: Tensor,
                valid1: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """`valid1` (B, N1): which type-1 nodes are real (None: all); padded ones get no attention."""
        n1 = x1.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        x = F.dropout(x, self.dropout, self.training) if self.dropout else x
        padded = None
        if valid1 is not None:
            padded = ~torch.cat([valid1, valid1.new_ones(x2.shape[:2])], dim=1)  # (B, N)

        # master node update
        att_m = torch.matmul(torch.tanh(self.att_projM(x * master)), self.att_weightM)
        if padded is not None:
            att_m = att_m.masked_fill(padded[:, :, None], -math.inf)
        att_m = F.softmax(att_m / self.temp, dim=-2)
        master = (self.proj_with_attM(torch.matmul(att_m.squeeze(-1).unsqueeze(1), x))
                  + self.proj_without_attM(master))

        # node update: one attention weight per (type, type) block
        pairs = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B, N, N, D)
        att = torch.empty(pairs.shape[:3] + (1,), dtype=pairs.dtype, device=pairs.device)
        att[:, :n1, :n1] = torch.matmul(pairs[:, :n1, :n1], self.att_weight11)
        att[:, n1:, n1:] = torch.matmul(pairs[:, n1:, n1:], self.att_weight22)
        att[:, :n1, n1:] = torch.matmul(pairs[:, :n1, n1:], self.att_weight12)
        att[:, n1:, :n1] = torch.matmul(pairs[:, n1:, :n1], self.att_weight12)
        if padded is not None:
            att = att.masked_fill(padded[:, None, :, None], -math.inf)
        att = F.softmax(att / self.temp, dim=-2).squeeze(-1)
        x = self.proj_with_att(torch.matmul(att, x)) + self.proj_without_att(x)
        x = F.selu(_node_bn(self.bn, x))
        return x[:, :n1], x[:, n1:], master


class GraphPool(nn.Module):
    """Keep the top `ratio` of nodes by a learned sigmoid score, scaled by that score;
    `dropout` applies to the scores' input in training."""

    def __init__(self, ratio: float, in_dim: int, dropout: float = 0.0):
        super().__init__()
        self.ratio = ratio
        self.proj = nn.Linear(in_dim, 1)
        self.dropout = dropout

    def forward(self, h: Tensor) -> Tensor:
        z = F.dropout(h, self.dropout, self.training) if self.dropout else h
        scores = torch.sigmoid(self.proj(z))
        k = max(int(h.size(1) * self.ratio), 1)
        _, idx = torch.topk(scores, k, dim=1)
        return torch.gather(h * scores, 1, idx.expand(-1, -1, h.size(2)))

    def forward_masked(self, h: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """`forward` on rows with `valid` (B, N) real nodes: row b keeps its top
        `max(int(n_b * ratio), 1)` real nodes (n_b = its real nodes) in `forward`'s order,
        first; the rest of the returned nodes are zero padding. Returns (nodes, their validity)."""
        scores = torch.sigmoid(self.proj(h))
        # int(n * ratio) as Python computes it, in float64
        keep = torch.clamp((valid.sum(1).double() * self.ratio).floor().long(), min=1)
        _, idx = torch.topk(scores.masked_fill(~valid[..., None], -math.inf), int(keep.max()), dim=1)
        kept = frames_valid(keep, idx.shape[1])
        out = torch.gather(h * scores, 1, idx.expand(-1, -1, h.size(2)))
        return out.masked_fill_(~kept[..., None], 0), kept


class GraphBackend(nn.Module):
    """AASIST's graph back-end, shared by AASIST and SSL-AASIST: spectral and temporal graph
    attention, two heterogeneous branches with master nodes, max of the branches, readout.

    Subclasses call `_build_graph` in their `__init__` after their front-end; the parameters
    sit at the top level of the model (`pos_S`, `GAT_layer_S`, ..., `out_layer`), the names
    both clovaai/aasist's and the SSL_Anti-spoofing repository's checkpoints use.
    `_embed(e_S, e_T)` maps spectral nodes `(B, n_spectral, C)` (before the positional term)
    and temporal nodes `(B, n_temporal, C)` to the embedding `(B, 5 * gat_dims[1])`:
    `[max |T|, mean T, max |S|, mean S, master]`.

    Dropouts (training only; 0 in AASIST here): `graph_dropout` on every graph layer's input
    nodes, `pool_dropout` on the graph pools' score input, `branch_dropout` on each branch's
    outputs before their maximum; a readout dropout belongs to the head (the embedding is
    taken before it)."""

    def _build_graph(self, channels: int, n_spectral: int, gat_dims, pool_ratios, temperatures,
                     graph_dropout: float = 0.0, pool_dropout: float = 0.0, branch_dropout: float = 0.0) -> None:
        self.pos_S = nn.Parameter(torch.empty(1, n_spectral, channels))
        self.master1 = nn.Parameter(torch.empty(1, 1, gat_dims[0]))
        self.master2 = nn.Parameter(torch.empty(1, 1, gat_dims[0]))
        gd = graph_dropout
        self.GAT_layer_S = GraphAttentionLayer(channels, gat_dims[0], temperatures[0], gd)
        self.GAT_layer_T = GraphAttentionLayer(channels, gat_dims[0], temperatures[1], gd)
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(gat_dims[0], gat_dims[1], temperatures[2], gd)
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(gat_dims[1], gat_dims[1], temperatures[2], gd)
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(gat_dims[0], gat_dims[1], temperatures[2], gd)
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(gat_dims[1], gat_dims[1], temperatures[2], gd)
        pd = pool_dropout
        self.pool_S = GraphPool(pool_ratios[0], gat_dims[0], pd)
        self.pool_T = GraphPool(pool_ratios[1], gat_dims[0], pd)
        self.pool_hS1 = GraphPool(pool_ratios[2], gat_dims[1], pd)
        self.pool_hT1 = GraphPool(pool_ratios[2], gat_dims[1], pd)
        self.pool_hS2 = GraphPool(pool_ratios[2], gat_dims[1], pd)
        self.pool_hT2 = GraphPool(pool_ratios[2], gat_dims[1], pd)
        self.branch_dropout = branch_dropout
        self.embedding_dim = 5 * gat_dims[1]

    def fit_input(self, wave: Tensor) -> Tensor:
        """Per-utterance input policy (subclasses set `input_policy` and `nb_samp`): `fixed` cuts
        or repeats to `nb_samp` samples."""
        if self.input_policy != "fixed":
            return wave
        n = wave.shape[-1]
        if n < self.nb_samp:
            wave = wave.repeat(math.ceil(self.nb_samp / n))
        return wave[: self.nb_samp]

    def _branch(self, out_T, out_S, master, layer1, layer2, pool_S, pool_T, valid_T=None):
        """One heterogeneous branch; `valid_T` (B, N): real temporal nodes (None: all)."""
        out_T1, out_S1, master1 = layer1(out_T, out_S, master, valid_T)
        out_S1 = pool_S(out_S1)
        if valid_T is None:
            out_T1 = pool_T(out_T1)
        else:
            out_T1, valid_T = pool_T.forward_masked(out_T1, valid_T)
        out_T_aug, out_S_aug, master_aug = layer2(out_T1, out_S1, master1, valid_T)
        out = (out_T1 + out_T_aug, out_S1 + out_S_aug, master1 + master_aug)
        if self.branch_dropout and self.training:
            out = tuple(F.dropout(t, self.branch_dropout, True) for t in out)
        return (*out, valid_T)

    def _embed(self, e_S: Tensor, e_T: Tensor, frames: Tensor | None = None) -> Tensor:
        """The graph part: spectral nodes `e_S` (B, S, C), temporal nodes `e_T` (B, T, C) ->
        the embedding. `frames` (B,): each row's real temporal nodes (None: all); the nodes
        beyond are zero and get no attention, and the readout runs over real nodes only."""
        out_S = self.pool_S(self.GAT_layer_S(e_S + self.pos_S))
        if frames is None:
            valid_T = None
            out_T = self.pool_T(self.GAT_layer_T(e_T))
        else:
            valid_T = frames_valid(frames, e_T.shape[1])
            out_T, valid_T = self.pool_T.forward_masked(self.GAT_layer_T(e_T, valid_T), valid_T)

        out_T1, out_S1, master1, valid_T1 = self._branch(out_T, out_S, self.master1, self.HtrgGAT_layer_ST11,
                                                         self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1,
                                                         valid_T)
        out_T2, out_S2, master2, _ = self._branch(out_T, out_S, self.master2, self.HtrgGAT_layer_ST21,
                                                  self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2, valid_T)
        out_T = torch.maximum(out_T1, out_T2)
        out_S = torch.maximum(out_S1, out_S2)
        master = torch.maximum(master1, master2)

        if valid_T1 is None:
            t_max, t_mean = out_T.abs().amax(dim=1), out_T.mean(dim=1)
        else:  # over each row's own nodes: padded ones zeroed (|.| >= 0 for the maximum)
            out_T = out_T.masked_fill(~valid_T1[..., None], 0)
            t_max, t_mean = out_T.abs().amax(dim=1), out_T.sum(dim=1) / valid_T1.sum(1, keepdim=True)
        return torch.cat([t_max, t_mean, out_S.abs().amax(dim=1), out_S.mean(dim=1), master.squeeze(1)], dim=1)


class AASIST(GraphBackend):
    """AASIST; `forward(waves)` returns `(embedding, logits)`, embedding of size 160."""

    sample_rate = 16000
    optimized = True  # the faster inference route (see the module doc); False: plain forward
    takes_lengths = True  # forward(waves, lengths): exact mixed-length batches (see the module doc)
    # On the faster route the encoder's time axis (input samples / 3) is zero-padded up to a
    # multiple of `bucket` steps, and the padding re-zeroed before every convolution and cut
    # off at the end, so outputs are those of the exact length. Inputs of nearby lengths
    # then share one set of convolution kernels: oneDNN builds kernels per shape, which
    # otherwise costs ~10 % when every utterance has its own length (the `full` policy).
    # 729 = 3**6 keeps every stage's width whole: 0.14 s of audio. 0: no padding.
    bucket = 729

    def __init__(self, model_config: dict, num_classes: int, input_policy: str = "full"):
        super().__init__()
        filts = model_config["filts"]
        gat_dims = model_config["gat_dims"]
        pool_ratios = model_config["pool_ratios"]
        temperatures = model_config["temperatures"]
        self.nb_samp = int(model_config.get("nb_samp", 64600))
        self.input_policy = input_policy

        self.conv_time = SincConv(filts[0], model_config["first_conv"], self.sample_rate)
        self.first_bn = nn.BatchNorm2d(1)
        self.encoder = nn.Sequential(
            nn.Sequential(ResidualBlock(filts[1], first=True)),
            *[nn.Sequential(ResidualBlock(c)) for c in (filts[2], filts[3], filts[4], filts[4], filts[4])],
        )
        self._build_graph(filts[-1][-1], filts[0] // 3, gat_dims, pool_ratios, temperatures)
        self.out_layer = nn.Linear(self.embedding_dim, num_classes)
        # sinc kernel, then 3x max-pooling, then six (1, 3) max-poolings must leave >= 1 frame
        self.min_samples = self.conv_time.kernel_size - 1 + 3 * 3 ** len(self.encoder)

    @staticmethod
    def num_classes_in(state_dict: dict) -> int:
        return state_dict["out_layer.weight"].shape[0]

    def _widths(self, lengths: Tensor) -> Tensor:
        """Time steps of each row after the sinc filters and the front-end's 3x pooling."""
        return (lengths - (self.conv_time.kernel_size - 1)) // 3

    def _encode(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Sinc filterbank, |.|, (3, 3) max-pooling, BN, SELU, residual encoder:
        `(B, T)` -> `(B, C, spectral, temporal)`, and each row's temporal frames (None:
        all rows have them all; else the frames beyond are zero)."""
        x = self.conv_time(x.unsqueeze(1)).unsqueeze(1)  # (B, 1, filters, time)
        x = F.selu(self.first_bn(F.max_pool2d(torch.abs(x), (3, 3))))
        if lengths is None:
            return self.encoder(x), None
        width = self._widths(lengths)
        for stage in self.encoder:
            for block in stage:
                x = block(x, width)
                width = width // 3
        return zero_beyond(x[..., : int(width.max())], width), width

    def _encode_fast(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """`_encode` on the faster inference route (see the module doc and `bucket`)."""
        shortest = x.shape[-1] if lengths is None else int(lengths.min())
        if shortest < self.min_samples:  # the plain route fails in a pooling; so does this one
            raise RuntimeError(f"AASIST input of {shortest} samples; at least {self.min_samples} needed")
        k = self.conv_time.kernel_size
        widths = None if lengths is None else self._widths(lengths)  # one per row
        width = (x.shape[-1] - k + 1) // 3 if widths is None else int(widths.max())  # time steps after the (3, 3) pooling
        padded = -(-width // self.bucket) * self.bucket if self.bucket else width
        x = F.pad(x[:, : 3 * width + k - 1], (0, 3 * (padded - width)))
        x = F.max_pool1d(self.conv_time(x.unsqueeze(1)).abs_(), 3)  # pool time: (B, filters, T')
        n = x.shape[1] // 3
        x = x[:, : 3 * n].unflatten(1, (n, 3))  # then filters, in threes
        x = torch.maximum(torch.maximum(x[:, :, 0], x[:, :, 1]), x[:, :, 2]).unsqueeze(1)
        x = F.selu(self.first_bn(x), inplace=True)
        for stage in self.encoder:
            for block in stage:
                if widths is None:
                    x = block.forward_fast(x, width if width != x.shape[-1] else None)
                else:
                    x = block.forward_fast(x, widths)
                    widths = widths // 3
                width //= 3
        return zero_beyond(x[..., :width], widths), widths

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`x` (B, T): waveforms; `lengths` (B,): how many of each row's samples are data
        (the rest zero padding; None: all). Row b's outputs are those of `x[b, :lengths[b]]`
        alone (up to float rounding; eval mode only)."""
        x, lengths = common_length(x, lengths)
        if lengths is not None and self.training:
            raise RuntimeError("AASIST: mixed-length batches are for inference (eval mode) only")
        fast = self.optimized and not self.training
        e, frames = self._encode_fast(x, lengths) if fast else self._encode(x, lengths)
        e = torch.abs(e)  # (B, C, spectral, temporal); padded frames zero
        # (padded frames are zero and |e| >= 0, so the maxima over time are the rows' own)
        embedding = self._embed(e.amax(dim=3).transpose(1, 2), e.amax(dim=2).transpose(1, 2), frames)
        return embedding, self.out_layer(embedding)
