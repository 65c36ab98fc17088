"""The training settings: every key of the `train` section, its default per architecture
and its check. No torch here: the config is validated before any model is built.

The defaults are the published recipes (see recipes.py); `train_settings(cfg)` is the
config's `train` section over its architecture's defaults.
"""
from __future__ import annotations

from ..checks import is_int, is_number
from ..errors import StageError

_COMMON = {"epochs": 100, "seed": 1234, "init": None, "init_head": True, "betas": [0.9, 0.999],
           "num_workers": 2, "bn_batches": 0}
TRAIN_DEFAULTS = {
    "AASIST": {**_COMMON, "batch_size": 24, "optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4,
               "scheduler": "cosine", "lr_min": 5e-6, "crop_samples": 64600, "class_weights": None},
    "ResNet34": {**_COMMON, "batch_size": 64, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1,
                 "scheduler": "constant", "lr_min": 0.0, "crop_frames": 350, "am_scale": 30.0,
                 "am_margin": 0.2, "freq_mask": 10, "time_mask": 40},
}
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


_number, _int = is_number, is_int


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
    "bn_batches": (lambda v: _int(v) and v >= 0,
                   "an integer >= 0 (training batches that re-estimate BatchNorm statistics after each epoch; 0: off)"),
    "crop_samples": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "class_weights": (lambda v: v is None or (isinstance(v, dict) and all(_number(w) and w > 0 for w in v.values())),
                      "null or an object {class: weight > 0}"),
    "crop_frames": (lambda v: _int(v) and v >= 3, "an integer >= 3"),
    "am_scale": (lambda v: _number(v) and v > 0, "a number > 0"),
    "am_margin": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "freq_mask": (lambda v: _int(v) and v >= 0, "an integer >= 0 (0: no frequency masking)"),
    "time_mask": (lambda v: _int(v) and v >= 0, "an integer >= 0 (0: no time masking)"),
}
def validate_train_section(cfg) -> None:
    """Check every `train.*` key against the architecture's recipe; a StageError names the key.

    (Stage 0's top-level keys, `train_protocol` ... `train_target`, are in config.SCHEMA.)"""
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
