"""The training recipes: every hyper-parameter, its default, its check, and what it builds.

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

`train_settings(cfg)` is the config's `train` section over the architecture's defaults.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import StageError
from .data import TARGETS

_COMMON = {"epochs": 100, "seed": 1234, "init": None, "init_head": True, "betas": [0.9, 0.999],
           "num_workers": 2}
TRAIN_DEFAULTS = {
    "AASIST": {**_COMMON, "batch_size": 24, "optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4,
               "scheduler": "cosine", "lr_min": 5e-6, "crop_samples": 64600, "class_weights": None},
    "ResNet34": {**_COMMON, "batch_size": 64, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1,
                 "scheduler": "constant", "lr_min": 0.0, "crop_frames": 350, "am_scale": 30.0,
                 "am_margin": 0.2, "freq_mask": 10, "time_mask": 40},
}
# the top-level keys of stage 0 (besides model_config, database_path, device, precision, on_error)
TOP_LEVEL_DEFAULTS = {"train_protocol": None, "train_audio": "{database_path}/wav/{attack}/train/{file}.flac",
                      "dev_protocol": None, "dev_fraction": 0.1, "train_target": "attack"}
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine", "constant")


def architecture(cfg) -> str:
    arch = cfg["model_config"].get("architecture")
    if arch not in TRAIN_DEFAULTS:
        raise StageError(f"model_config.architecture is {arch!r}; training knows {', '.join(TRAIN_DEFAULTS)}")
    return arch


def train_settings(cfg) -> dict:
    """The `train` section with the architecture's defaults for every key it leaves out."""
    section = cfg["train"] if cfg["train"] is not None else {}
    if not isinstance(section, dict):
        raise StageError("'train' must be an object")
    return {**TRAIN_DEFAULTS[architecture(cfg)], **section}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS = {  # key: (test, what it must be)
    "epochs": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _int(v) and v >= 2, "an integer >= 2 (BatchNorm needs 2 utterances)"),
    "seed": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "init": (lambda v: v is None or (isinstance(v, str) and v != ""), "null or a checkpoint path"),
    "init_head": (lambda v: isinstance(v, bool), "true or false"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "betas": (lambda v: isinstance(v, list) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v),
              "two numbers in [0, 1)"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "scheduler": (lambda v: v in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
    "lr_min": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "num_workers": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "crop_samples": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "class_weights": (lambda v: v is None or (isinstance(v, dict) and all(_number(w) and w > 0 for w in v.values())),
                      "null or an object {class: weight > 0}"),
    "crop_frames": (lambda v: _int(v) and v >= 3, "an integer >= 3"),
    "am_scale": (lambda v: _number(v) and v > 0, "a number > 0"),
    "am_margin": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "freq_mask": (lambda v: _int(v) and v >= 0, "an integer >= 0 (0: no frequency masking)"),
    "time_mask": (lambda v: _int(v) and v >= 0, "an integer >= 0 (0: no time masking)"),
}
_TOP_CHECKS = {
    "train_protocol": (lambda v: v is None or (isinstance(v, str) and v != ""), "a protocol path"),
    "train_audio": (lambda v: isinstance(v, str) and "{file}" in v, "a path template containing {file}"),
    "dev_protocol": (lambda v: v is None or (isinstance(v, str) and v != ""), "null or a protocol path"),
    "dev_fraction": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1) (0: no dev set, the last epoch is kept)"),
    "train_target": (lambda v: v in TARGETS, f"one of {', '.join(TARGETS)}"),
}


def validate_train_section(cfg) -> None:
    """Check stage 0's top-level keys and every `train.*` key; a StageError names the key."""
    for key, (test, what) in _TOP_CHECKS.items():
        if not test(cfg[key]):
            raise StageError(f"'{key}' is {cfg[key]!r}; expected {what}")
    settings = train_settings(cfg)
    arch = architecture(cfg)
    for key, value in settings.items():
        if key not in _CHECKS or key not in TRAIN_DEFAULTS[arch]:
            raise StageError(f"'train.{key}' is not a setting of the {arch} recipe; its settings: "
                             f"{', '.join(TRAIN_DEFAULTS[arch])}")
        test, what = _CHECKS[key]
        if not test(value):
            raise StageError(f"'train.{key}' is {value!r}; expected {what}")
    if settings["lr_min"] > settings["lr"]:
        raise StageError(f"'train.lr_min' ({settings['lr_min']}) exceeds 'train.lr' ({settings['lr']})")


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
    """AASIST's residual blocks keep a `bn1` that their forward never reads (see
    models/aasist.py): it gets no gradient, so it is frozen, which DistributedDataParallel
    needs (every trainable parameter must receive a gradient each step)."""
    for name, param in model.named_parameters():
        if name.startswith("encoder.") and ".bn1." in name:
            param.requires_grad_(False)


def optimizer(settings: dict, params) -> torch.optim.Optimizer:
    cls = torch.optim.Adam if settings["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=settings["lr"], betas=tuple(settings["betas"]), weight_decay=settings["weight_decay"])


def scheduler(settings: dict, opt: torch.optim.Optimizer, total_steps: int):
    """Stepped once per optimizer step."""
    if settings["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps), eta_min=settings["lr_min"])
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def loss_function(settings: dict, classes: list[str]):
    """`loss(logits, targets) -> scalar`: additive-margin softmax on ResNet-34's cosines,
    (weighted) cross-entropy on AASIST's logits."""
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
