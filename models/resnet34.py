"""ResNet-34 countermeasure (Dao, Rouvier, Matrouf, ASVspoof 5 workshop 2024).

A re-implementation of the anti-spoofing ResNet of the authors' toolkit (trained by stage 0, run by stages 1 and 3),
parameter-for-parameter compatible with its checkpoints (`strict=True`). It reads top to
bottom like the system description: Kaldi filterbank front-end with mean normalisation ->
convolutional stem -> four stages of residual blocks -> attentive statistics pooling over
time -> 256-dim embedding (`norm_embed`) -> additive-margin softmax head, which at inference
returns the plain cosines between the embedding and each class weight.

The front-end lives inside the model, so a checkpoint plus its `model_config` is all that
inference needs; `features(wave)` exposes exactly what the network is fed.

Inference in eval mode takes a faster route with the same outputs up to float32 rounding
(`ResNet34.optimized`, on by default; False gives the plain layer-by-layer forward): the
convolutional trunk runs channels-last, with every BatchNorm folded into the convolution
before it at forward time (the state dict keeps the original parameters and keys) and
in-place ReLUs and residual sums. About x1.25 on CPU (benchmarks/bench_extraction.py).

Exact mixed-length batching (`forward(waves, lengths)`, both routes, eval mode): rows of
different lengths, zero-padded, each give the embedding of that row alone (up to float32
rounding). The filterbank and its mean normalisation run on each row's own samples; every
convolution's input has the frames beyond its row's re-zeroed (what the unpadded
computation's zero padding reads; a stride-2 stage keeps `ceil(frames / 2)`), and the
attentive statistics pooling's softmax, mean and deviation run over each row's frames only.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from torchaudio.compliance import kaldi

from .hparams import INPUT_POLICIES
from .masking import common_length, frames_valid, zero_beyond

_CL = torch.channels_last


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: Tensor) -> Tensor:
    """`bn(conv(x))` at inference as one convolution, channels-last out."""
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight, bn.bias)
    out = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return out if out.is_contiguous(memory_format=_CL) else out.contiguous(memory_format=_CL)


class KaldiFbank(nn.Module):
    """80 log-mel bins plus raw log energy (first column), then CMN: `(samples,) -> (frames, 81)`."""

    def __init__(self, n_mels: int = 80, sample_rate: int = 16000, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0):
        super().__init__()
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        # torchaudio refuses a waveform shorter than one analysis window
        self.window_samples = int(sample_rate * frame_length_ms / 1000)

    def forward(self, wave: Tensor) -> Tensor:
        feats = kaldi.fbank(
            wave.unsqueeze(0), sample_frequency=self.sample_rate,
            frame_length=self.frame_length_ms, frame_shift=self.frame_shift_ms,
            window_type="povey", preemphasis_coefficient=0.97, dither=0.0, snip_edges=False,
            num_mel_bins=self.n_mels, low_freq=20.0, high_freq=-400.0, use_energy=True,
            energy_floor=0.0, raw_energy=True, remove_dc_offset=True, round_to_power_of_two=True)
        # cepstral mean normalisation over the whole utterance, no variance normalisation
        return feats - feats.mean(dim=0, keepdim=True)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # a projection shortcut only where the block changes resolution or width
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: Tensor, frames: Tensor | None = None) -> Tensor:
        """With `frames` (B,), only the first `frames[b]` time steps (dim 2) of row b are data;
        the output's first `ceil(frames[b] / stride)` are then those of the data alone."""
        zero_beyond(x, frames, dim=2)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(zero_beyond(out, self.out_frames(frames), dim=2)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)

    def out_frames(self, frames: Tensor | None) -> Tensor | None:
        """Time steps of the block's output for `frames` of input (3x3, padding 1, the stride)."""
        stride = self.conv1.stride[0]
        return frames if frames is None or stride == 1 else (frames - 1) // stride + 1

    def forward_fast(self, x: Tensor, frames: Tensor | None = None) -> Tensor:
        """`forward` at inference on channels-last input: BatchNorms folded, in-place ops."""
        zero_beyond(x, frames, dim=2)
        out = F.relu(_conv_bn(self.conv1, self.bn1, x), inplace=True)
        out = _conv_bn(self.conv2, self.bn2, zero_beyond(out, self.out_frames(frames), dim=2))
        identity = x if self.downsample is None else _conv_bn(self.downsample[0], self.downsample[1], x)
        return F.relu(out.add_(identity), inplace=True)


class AMSoftmaxHead(nn.Module):
    """Additive-margin softmax output layer: the cosines of the embedding to each class.
    Training's loss subtracts the margin from the target's and scales them all (the recipe's
    `train.am_margin`, `train.am_scale`: see sourcetrace/training/recipes.py)."""

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.W = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.W)

    def forward(self, embedding: Tensor) -> Tensor:
        return F.linear(F.normalize(embedding, dim=1), F.normalize(self.W, dim=1))


class ResNet34(nn.Module):
    """ResNet-34 CM; `forward(waves)` returns `(embedding, logits)`, embedding of size 256."""

    sample_rate = 16000
    optimized = True  # the faster inference route (see the module doc); False: plain forward
    takes_lengths = True  # forward(waves, lengths): exact mixed-length batches (see the module doc)

    def __init__(self, model_config: dict, num_classes: int, input_policy: str = "fixed"):
        super().__init__()
        if input_policy not in INPUT_POLICIES:
            raise ValueError(f"input_policy {input_policy!r}; expected one of {INPUT_POLICIES}")
        self.input_policy = input_policy
        # the toolkit's extraction recipe keeps the first 14 s of features
        self.max_frames = int(model_config.get("max_frames", 1400))
        n_mels = int(model_config.get("n_mels", 80))
        blocks = list(model_config.get("blocks", [3, 4, 6, 3]))
        channels = list(model_config.get("channels", [32, 64, 128, 256]))
        strides = [1, 2, 2, 2]
        self.embedding_dim = int(model_config.get("embedding_dim", 256))

        self.frontend = KaldiFbank(n_mels, self.sample_rate)

        # stem; the input is (batch, 1, frames, n_mels + 1): time before frequency
        self.pre_conv1 = nn.Conv2d(1, channels[0], 3, stride=1, padding=1, bias=False)
        self.pre_bn1 = nn.BatchNorm2d(channels[0])

        stages, c_in, freq = [], channels[0], n_mels + 1
        for n_blocks, c_out, stride in zip(blocks, channels, strides):
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride),
                                        *[BasicBlock(c_out, c_out) for _ in range(n_blocks - 1)]))
            c_in, freq = c_out, (freq - 1) // stride + 1  # 3x3 conv, padding 1: ceil(freq / stride)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        # attentive statistics pooling: every (channel, frequency bin) is one frame feature
        frame_dim = channels[-1] * freq  # 256 x 11 = 2816
        self.attention = nn.Sequential(
            nn.Conv1d(frame_dim, 128, kernel_size=1),
            nn.Tanh(),
            nn.Conv1d(128, frame_dim, kernel_size=1),
            nn.Softmax(dim=2),  # over time
        )
        self.norm_stats = nn.BatchNorm1d(2 * frame_dim)
        self.fc_embed = nn.Linear(2 * frame_dim, self.embedding_dim)
        self.norm_embed = nn.BatchNorm1d(self.embedding_dim)
        self.output = AMSoftmaxHead(self.embedding_dim, num_classes)

        # one 25 ms analysis window (400 samples) gives 3 frames (snip_edges=False), which the
        # stride-2 stages and the pooling handle; torchaudio rejects anything shorter, and so
        # does `features` (with a ValueError)
        self.min_samples = self.frontend.window_samples

    @staticmethod
    def num_classes_in(state_dict: dict) -> int:
        return state_dict["output.W"].shape[0]

    def fit_input(self, wave: Tensor) -> Tensor:
        """Per-utterance input policy: nothing to do on the waveform (cropping is on frames)."""
        return wave

    def features(self, wave: Tensor) -> Tensor:
        """The `(frames, n_mels + 1)` matrix the network is fed for one waveform `(samples,)`."""
        if wave.shape[-1] < self.min_samples:
            raise ValueError(f"waveform of {wave.shape[-1]} samples is shorter than one "
                             f"{self.min_samples}-sample analysis window")
        feats = self.frontend(wave)
        if self.input_policy == "fixed":
            feats = feats[: self.max_frames]  # shorter utterances are used whole
        return feats

    def forward(self, waves: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`waves` (B, T); `lengths` (B,): how many of each row's samples are data (the rest
        zero padding; None: all). Row b's outputs are those of `waves[b, :lengths[b]]` alone
        (up to float rounding; eval mode only)."""
        waves, lengths = common_length(waves, lengths)
        if lengths is not None and self.training:
            raise RuntimeError("ResNet34: mixed-length batches are for inference (eval mode) only")
        # the filterbank takes one utterance at a time; equal lengths give equal frame counts.
        # It runs in float32 even under autocast: in float16 the power spectrum overflows
        with torch.autocast(waves.device.type, enabled=False):
            if lengths is None:
                x, frames = torch.stack([self.features(w.float()) for w in waves]), None
            else:  # each row's own samples: its mean normalisation sees no padding
                feats = [self.features(w[:n].float()) for w, n in zip(waves, lengths.tolist())]
                frames = torch.tensor([f.shape[0] for f in feats], device=waves.device)
                x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # zero-padded frames
        x = x.unsqueeze(1)  # (B, 1, T, 81)

        if not self.optimized or self.training:
            x = F.relu(self.pre_bn1(self.pre_conv1(x)))
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4):  # to (B, 256, T/8, 11)
                for block in layer:
                    x = block(x, frames)
                    frames = block.out_frames(frames)
        else:
            x = F.relu(_conv_bn(self.pre_conv1, self.pre_bn1, x), inplace=True)
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
                for block in layer:
                    x = block.forward_fast(x, frames)
                    frames = block.out_frames(frames)

        # (B, C, T', F') -> (B, C * F', T'), channel-major like the original
        x = x.transpose(2, 3).flatten(1, 2)
        if frames is None:
            w = self.attention(x)
        else:  # softmax, mean and deviation over each row's own frames
            valid = frames_valid(frames, x.shape[2])[:, None, :]
            x = x.masked_fill(~valid, 0)
            w = F.softmax(self.attention[:-1](x).masked_fill(~valid, -math.inf), dim=2)
        mu = torch.sum(x * w, dim=2)
        sigma = torch.sqrt((torch.sum(x * x * w, dim=2) - mu * mu).clamp(min=1e-5))

        embedding = self.norm_embed(self.fc_embed(self.norm_stats(torch.cat([mu, sigma], dim=1))))
        return embedding, self.output(embedding)
