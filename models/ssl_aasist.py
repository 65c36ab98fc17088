"""SSL-AASIST (Tak et al., Odyssey 2022): a self-supervised speech front-end with AASIST's graph back-end.

Reads top to bottom like the SSL_Anti-spoofing repository's `Model`: waveform -> SSL model
(torchaudio's wav2vec 2.0 / XLS-R / HuBERT / WavLM, `ssl_model`) -> frame features of one
layer or a learned weighted sum of layers -> linear projection `LL` (SSL dim -> `filts[0]`,
1024 -> 128 for XLS-R 300M) -> (3, 3) max-pooling, BatchNorm, SELU -> six residual blocks
without time pooling -> BatchNorm, SELU -> attentive pooling (a 1x1-conv attention map,
softmax over time for the spectral nodes, over the projected dimension for the temporal
ones) -> AASIST's graph back-end (`GraphBackend`, models/aasist.py) -> the 160-dim
embedding (the last hidden layer) -> head. Parameter names are the repository's, so its
checkpoints (and the zero-shot source-tracing repository's) load after the SSL part is
renamed (models/ssl_keys.py).

Kept from the original: the residual blocks' first convolution reads the block input (`bn1`
is never used), the training dropouts (graph inputs 0.2, graph-pool scores 0.3, branches 0.2,
readout 0.5 before the head; the embedding is taken before the readout dropout).

Long inputs: in eval mode an input longer than `window_seconds` is cut into
n = ceil(T / W) windows of w = ceil(T / n) samples, evenly spaced from its first to its last
sample (they overlap by less than one window in all), run through the whole network at most
as many windows at a time as the batch has utterances, and its embedding is the mean of the
window embeddings (its logits the head's on that mean). Memory then stays that of a batch of
W-second inputs whatever the length, where self-attention and the temporal graph alone would
grow with the square of the length. An input up to W seconds is embedded whole; a longer one
gets an embedding that is no longer that of one pass over the whole utterance.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
import torchaudio.models as tam
from torch import Tensor, nn

from . import ssl_keys
from .aasist import GraphBackend, ResidualBlock
from .hparams import SSL_AASIST_DEFAULT, SSL_ARGUMENTS

# model_config["ssl"] -> torchaudio builder (names and arguments: hparams.SSL_ARGUMENTS)
SSL_BUILDERS = {name: getattr(tam, name) for name in SSL_ARGUMENTS}
DROPOUT = {"graph": 0.2, "pool": 0.3, "branch": 0.2, "readout": 0.5}  # SSL_Anti-spoofing's model.py


def build_ssl(name: str, ssl_config: dict) -> nn.Module:
    return SSL_BUILDERS[name](**ssl_config, aux_num_out=None)


class CosineHead(nn.Module):
    """Cosines between the embedding and each class weight (the AAM-softmax recipe's logits)."""

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embedding: Tensor) -> Tensor:
        return F.linear(F.normalize(embedding, dim=1), F.normalize(self.weight, dim=1))


class SSL_AASIST(GraphBackend):  # noqa: N801 - the architecture's name in configs
    """SSL front-end + AASIST back-end; `forward(waves)` returns `(embedding, logits)`.

    Training hooks (set by the training loop, never at inference): `mixup = (permutation,
    lam)` mixes the SSL features of each utterance with those of `permutation` (lam for its
    own), `ssl_frozen_now` runs the SSL model without gradients and without dropout."""

    sample_rate = 16000

    def __init__(self, model_config: dict, num_classes: int, input_policy: str = "full"):
        super().__init__()
        cfg = {**SSL_AASIST_DEFAULT, **model_config}
        filts = cfg["filts"]
        self.input_policy = input_policy
        self.nb_samp = int(cfg["nb_samp"])
        self.window = int(cfg["window_seconds"] * self.sample_rate)
        self.ssl_layer = cfg["ssl_layer"]
        self.ssl_frozen = bool(cfg["ssl_frozen"])
        self.ssl_frozen_now = False
        self.mixup: tuple[Tensor, float] | None = None

        self.ssl_model = build_ssl(cfg["ssl"], cfg["ssl_config"])
        transformer = self.ssl_model.encoder.transformer
        n_layers, ssl_dim = len(transformer.layers), transformer.layer_norm.normalized_shape[0]
        if isinstance(self.ssl_layer, int) and not 1 <= self.ssl_layer <= n_layers:
            raise ValueError(f"ssl_layer {self.ssl_layer}: the SSL model has layers 1 to {n_layers}")
        if self.ssl_layer == "weighted":
            self.ssl_layer_weights = nn.Parameter(torch.zeros(n_layers))
        if self.ssl_frozen:
            self.ssl_model.requires_grad_(False)
        self.LL = nn.Linear(ssl_dim, filts[0])
        self.first_bn = nn.BatchNorm2d(1)
        self.first_bn1 = nn.BatchNorm2d(filts[-1][-1])
        self.encoder = nn.Sequential(
            nn.Sequential(ResidualBlock(filts[1], first=True, pool=False)),
            *[nn.Sequential(ResidualBlock(c, pool=False)) for c in (filts[2], filts[3], filts[4], filts[4], filts[4])],
        )
        channels = filts[-1][-1]
        self.attention = nn.Sequential(nn.Conv2d(channels, 2 * channels, kernel_size=1), nn.SELU(),
                                       nn.BatchNorm2d(2 * channels), nn.Conv2d(2 * channels, channels, kernel_size=1))
        self._build_graph(channels, filts[0] // 3, cfg["gat_dims"], cfg["pool_ratios"], cfg["temperatures"],
                          DROPOUT["graph"], DROPOUT["pool"], DROPOUT["branch"])
        self.out_layer = (nn.Linear(self.embedding_dim, num_classes) if cfg["head"] == "linear"
                          else CosineHead(self.embedding_dim, num_classes))
        # the convolutional feature encoder must leave 3 frames for the (3, 3) pooling
        frames = 3
        for layer in reversed(self.ssl_model.feature_extractor.conv_layers):
            frames = (frames - 1) * layer.stride + layer.kernel_size
        self.min_samples = frames

    @staticmethod
    def num_classes_in(state_dict: dict) -> int:
        return state_dict["out_layer.weight"].shape[0]

    @staticmethod
    def convert_state_dict(state: dict) -> dict:
        """A whole-system checkpoint in this toolkit's names, or the SSL_Anti-spoofing /
        zero-shot repositories' (fairseq names under `ssl_model.model.`, the rest as here; also
        saved from `nn.DataParallel`, every key under `module.`), in this model's names."""
        if state and all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        prefix = "ssl_model.model."
        if not any(k.startswith(prefix) for k in state):
            return state
        ssl = ssl_keys.from_fairseq({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
        return {**{f"ssl_model.{k}": v for k, v in ssl.items()}, **rest}

    def load_ssl_weights(self, state: dict) -> None:
        """Load a pretrained SSL model alone (fairseq, Hugging Face or torchaudio names), strict."""
        self.ssl_model.load_state_dict(ssl_keys.to_torchaudio(state), strict=True)

    def unused_parameter_names(self) -> list[str]:
        """SSL parameters the configured `ssl_layer` never reads: the layers above a fixed
        layer, and the final layer norm unless the output is the encoder's ('last') or the
        model normalises before its layers (torchaudio's Transformer.layer_norm_first)."""
        transformer = self.ssl_model.encoder.transformer
        prefix = "ssl_model.encoder.transformer."
        names = []
        if isinstance(self.ssl_layer, int):
            names += [f"{prefix}layers.{i}.{n}" for i in range(self.ssl_layer, len(transformer.layers))
                      for n, _ in transformer.layers[i].named_parameters()]
        if self.ssl_layer != "last" and not transformer.layer_norm_first:
            names += [f"{prefix}layer_norm.{n}" for n, _ in transformer.layer_norm.named_parameters()]
        return names

    def train(self, mode: bool = True):
        super().train(mode)
        if self.ssl_frozen or self.ssl_frozen_now:
            self.ssl_model.eval()
        return self

    def ssl_features(self, waves: Tensor) -> Tensor:
        """`(B, T)` -> `(B, frames, ssl_dim)`: the configured layer's (or layers') output."""
        frozen = self.ssl_frozen or self.ssl_frozen_now
        with torch.no_grad() if frozen else nullcontext():
            if self.ssl_layer == "last":  # the encoder's output, final layer norm included (fairseq's features_only)
                return self.ssl_model(waves)[0]
            if isinstance(self.ssl_layer, int):
                return self.ssl_model.extract_features(waves, num_layers=self.ssl_layer)[0][-1]
            layers = torch.stack(self.ssl_model.extract_features(waves)[0])  # (L, B, frames, dim)
        weights = F.softmax(self.ssl_layer_weights, dim=0).to(layers.dtype)
        return torch.einsum("l,lbtd->btd", weights, layers)

    def _forward(self, waves: Tensor) -> Tensor:
        """The embedding of equal-length inputs, one pass."""
        feats = self.ssl_features(waves)
        if self.mixup is not None and self.training:
            perm, lam = self.mixup
            feats = lam * feats + (1 - lam) * feats[perm]
        x = self.LL(feats).transpose(1, 2).unsqueeze(1)  # (B, 1, filts[0], frames)
        x = F.selu(self.first_bn(F.max_pool2d(x, (3, 3))))
        x = F.selu(self.first_bn1(self.encoder(x)))  # (B, C, filts[0] // 3, frames // 3)
        w = self.attention(x)
        e_S = (x * F.softmax(w, dim=-1)).sum(dim=-1).transpose(1, 2)  # spectral nodes: attention over time
        e_T = (x * F.softmax(w, dim=-2)).sum(dim=-2).transpose(1, 2)  # temporal nodes
        return self._embed(e_S, e_T)

    def windows(self, n_samples: int) -> list[int]:
        """Start of each window of an input of `n_samples` (one window, at 0, when it fits)."""
        if self.training or n_samples <= self.window:
            return [0]
        n = -(-n_samples // self.window)
        width = -(-n_samples // n)
        return [round(i * (n_samples - width) / (n - 1)) for i in range(n)]

    def forward(self, waves: Tensor) -> tuple[Tensor, Tensor]:
        starts = self.windows(waves.shape[-1])
        if len(starts) == 1:
            embedding = self._forward(waves)
        else:
            width = -(-waves.shape[-1] // len(starts))
            pieces = torch.stack([waves[:, s:s + width] for s in starts], dim=1).flatten(0, 1)  # (B * n, w)
            embedding = torch.cat([self._forward(p) for p in pieces.split(len(waves))])
            embedding = embedding.view(len(waves), len(starts), -1).mean(dim=1)
        readout = F.dropout(embedding, DROPOUT["readout"], self.training)
        return embedding, self.out_layer(readout)
