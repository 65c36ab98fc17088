"""The training recipes: what each builds from its settings (optimizer, schedule, loss, masking).

- AASIST, after clovaai/aasist (`config/AASIST.conf`, `main.py`): Adam (lr 1e-4, betas
  0.9/0.999, weight decay 1e-4), cosine annealing per step down to 5e-6, batch 24, random
  64600-sample crops (shorter utterances repeated), cross-entropy, 100 epochs. That
  repository weights the cross-entropy 0.1 for spoof and 0.9 for bona fide
  (`class_weights: {"spoof": 0.1, "bonafide": 0.9}` with `train_target: label`); the default
  here is unweighted because the source-tracing target has no such imbalance.
- ResNet-34, after the ASVspoof 5 toolkit of Dao et al.: AdamW (lr 1e-3, weight decay 0.1),
  batch 64, random 350-frame crops (3.5 s of audio, shorter utterances repeated),
  additive-margin softmax (scale 30, margin 0.2), SpecAugment-style masking of one band of
  up to `freq_mask` filterbank bins and one span of up to `time_mask` frames per utterance
  (torchaudio), constant learning rate, 100 epochs. The toolkit's noise, reverberation and
  codec augmentation is not reproduced.
- SSL-AASIST, after Tak et al. 2022 (SSL_Anti-spoofing, `main_SSL_LA.py`, recipe `tak2022`):
  Adam (lr 1e-6, weight decay 1e-4), constant learning rate, batch 14, 64600-sample inputs,
  cross-entropy (weighted 0.1 spoof / 0.9 bona fide there, on the label target), the whole
  network fine-tuned, 100 epochs. Its RawBoost augmentation is not reproduced.
- SSL-AASIST for source tracing, after Chhibber, Mishra, Kinnunen 2025 (recipe
  `chhibber2025`, `train_SSL_AASIST_AAM_RegMixup.py`): Adam (lr 1e-4, weight decay 1e-4),
  cosine per step down to 5e-6, batch 16, additive angular margin softmax (scale 30, margin
  0.5 reached linearly over the first 10 epochs: epoch e uses 0.5 * e / 10), mixup of the SSL
  features (lam ~ Beta(0.4, 0.4), from epoch 10), the SSL model frozen for the first 5
  epochs. Not reproduced: its silence trimming and its first-64600-samples crop (here a
  random crop), its selection of the epoch by dev EER (here dev loss).

The defaults and checks of every setting are in settings.py.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import StageError

def crop_samples(settings: dict, model: nn.Module) -> int:
    """Training crop length in samples (ResNet-34's frames at its 10 ms shift)."""
    if "crop_frames" in settings:
        return settings["crop_frames"] * model.sample_rate * int(model.frontend.frame_shift_ms) // 1000
    return settings["crop_samples"]


def init_untrained(model: nn.Module) -> None:
    """Draw the parameters the inference-only models leave uninitialised (AASIST's graph
    attention weights, positional and master nodes), as the original training code does."""
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("att_weight"):
            nn.init.xavier_normal_(param)
        elif leaf in ("pos_S", "master1", "master2"):
            nn.init.normal_(param)


def freeze_unused(model: nn.Module) -> None:
    """AASIST's (and SSL-AASIST's) residual blocks keep a `bn1` that their forward never reads
    (see models/aasist.py), and an SSL model read at an inner layer leaves the layers above
    unused: they get no gradient, so they are frozen, which DistributedDataParallel needs
    (every trainable parameter must receive a gradient each step)."""
    unused = set(model.unused_parameter_names()) if hasattr(model, "unused_parameter_names") else set()
    for name, param in model.named_parameters():
        if (name.startswith("encoder.") and ".bn1." in name) or name in unused:
            param.requires_grad_(False)


def optimizer(settings: dict, params) -> torch.optim.Optimizer:
    cls = torch.optim.Adam if settings["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=settings["lr"], betas=tuple(settings["betas"]), weight_decay=settings["weight_decay"])


def scheduler(settings: dict, opt: torch.optim.Optimizer, total_steps: int):
    """Stepped once per optimizer step."""
    if settings["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps), eta_min=settings["lr_min"])
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def aam_margin(settings: dict, epoch: int) -> float:
    """The additive angular margin of 0-based `epoch`: `aam_margin * min(1, epoch / aam_warmup_epochs)`."""
    warmup = settings["aam_warmup_epochs"]
    return settings["aam_margin"] * (min(1.0, epoch / warmup) if warmup else 1.0)


def loss_function(settings: dict, classes: list[str], epoch: int = 0):
    """`loss(logits, targets) -> scalar` for 0-based `epoch`: additive-margin softmax on
    ResNet-34's cosines; additive angular margin softmax on SSL-AASIST's cosines under
    `loss: aam` (ArcFace: the target's logit is s cos(theta + m), the others s cos(theta),
    cosines clamped to 1 - 1e-7 in magnitude, m from `aam_margin`); (weighted) cross-entropy
    on the logits otherwise."""
    if settings.get("loss") == "aam":
        scale, margin = settings["aam_scale"], aam_margin(settings, epoch)

        def aam_softmax(cosines, targets):
            cosines = cosines.clamp(-1 + 1e-7, 1 - 1e-7)
            target = F.one_hot(targets, cosines.shape[1]).bool()
            logits = torch.where(target, torch.cos(torch.acos(cosines) + margin), cosines)
            return F.cross_entropy(scale * logits, targets)
        return aam_softmax
    if "am_scale" in settings:
        scale, margin = settings["am_scale"], settings["am_margin"]

        def am_softmax(cosines, targets):
            return F.cross_entropy(scale * (cosines - margin * F.one_hot(targets, cosines.shape[1])), targets)
        return am_softmax
    weights = settings.get("class_weights")
    if weights:
        unknown = sorted(set(weights) - set(classes))
        if unknown:
            raise StageError(f"'train.class_weights' names {', '.join(unknown)}, not a class of the training "
                             f"protocol ({', '.join(classes)})")
        weight = torch.tensor([float(weights.get(c, 1.0)) for c in classes])
        return lambda logits, targets: F.cross_entropy(logits, targets, weight=weight.to(logits.device))
    return F.cross_entropy


def mixup_draw(settings: dict, epoch: int, step: int, rank: int, n: int) -> tuple[torch.Tensor, float] | None:
    """`(permutation of the n utterances, lam)` of one training step under mixup (lam ~
    Beta(mixup_alpha, mixup_alpha), from epoch `mixup_start_epoch` on), else None; drawn from
    (seed, epoch, step, rank) alone, so a resumed run draws the same."""
    alpha = settings.get("mixup_alpha", 0)
    if not alpha or epoch < settings["mixup_start_epoch"]:
        return None
    rng = np.random.default_rng([settings["seed"], epoch, step, rank])
    return torch.from_numpy(rng.permutation(n)), float(rng.beta(alpha, alpha))


def attach_spec_augment(model: nn.Module, settings: dict) -> None:
    """Mask each training utterance's filterbank (frames, bins) in the model's front-end,
    after mean normalisation, so a masked value is the utterance mean (0)."""
    if not ("freq_mask" in settings and (settings["freq_mask"] or settings["time_mask"])):
        return
    import torchaudio.transforms as T
    masks = [m for m in (T.FrequencyMasking(settings["freq_mask"]) if settings["freq_mask"] else None,
                         T.TimeMasking(settings["time_mask"]) if settings["time_mask"] else None) if m]

    def hook(module, inputs, feats):
        if not module.training:
            return None
        spec = feats.transpose(0, 1)  # torchaudio masks (..., freq, time)
        for mask in masks:
            spec = mask(spec)
        return spec.transpose(0, 1)
    model.frontend.register_forward_hook(hook)


def total_steps(n_train: int, per_rank_batch: int, world_size: int, epochs: int) -> int:
    """Optimizer steps of the whole run (incomplete last batches are dropped)."""
    return epochs * (math.ceil(n_train / world_size) // per_rank_batch)
