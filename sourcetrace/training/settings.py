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
    # Tak et al. 2022 (SSL_Anti-spoofing, main_SSL_LA.py); "chhibber2025" in RECIPES
    "SSL_AASIST": {**_COMMON, "recipe": "tak2022", "batch_size": 14, "optimizer": "adam", "lr": 1e-6,
                   "weight_decay": 1e-4, "scheduler": "constant", "lr_min": 0.0, "crop_samples": 64600,
                   "class_weights": None, "loss": "ce", "aam_scale": 30.0, "aam_margin": 0.5, "aam_warmup_epochs": 0,
                   "mixup_alpha": 0.0, "mixup_start_epoch": 0, "ssl_frozen_epochs": 0, "ssl_weights": None},
}
# named recipes of an architecture: their values over its defaults (train.recipe selects one)
RECIPES = {
    "tak2022": {},
    # Chhibber, Mishra, Kinnunen 2025 (Zero-Shot-Open-Set-Speech-Deepfake-Source-Tracing:
    # train_SSL_AASIST_AAM_RegMixup.py, config/STOPA_ASVspoof2019.conf, utils.py)
    "chhibber2025": {"batch_size": 16, "lr": 1e-4, "scheduler": "cosine", "lr_min": 5e-6, "loss": "aam",
                     "aam_scale": 30.0, "aam_margin": 0.5, "aam_warmup_epochs": 10, "mixup_alpha": 0.4,
                     "mixup_start_epoch": 10, "ssl_frozen_epochs": 5},
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
    defaults = TRAIN_DEFAULTS[architecture(cfg)]
    # a named recipe's values over the architecture's; an unknown name is reported by validate_train_section
    recipe = RECIPES.get(section.get("recipe"), {}) if "recipe" in defaults else {}
    return {**defaults, **recipe, **section}


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
    "recipe": (lambda v: v in RECIPES, f"one of {', '.join(RECIPES)}"),
    "loss": (lambda v: v in ("ce", "aam"), "'ce' (cross-entropy) or 'aam' (additive angular margin softmax)"),
    "aam_scale": (lambda v: _number(v) and v > 0, "a number > 0"),
    "aam_margin": (lambda v: _number(v) and 0 <= v < 3.14, "a number in [0, pi) (radians)"),
    "aam_warmup_epochs": (lambda v: _int(v) and v >= 0, "an integer >= 0 (0: the full margin from the start)"),
    "mixup_alpha": (lambda v: _number(v) and v >= 0, "a number >= 0 (0: no mixup)"),
    "mixup_start_epoch": (lambda v: _int(v) and v >= 0, "an integer >= 0 (0-based epoch)"),
    "ssl_frozen_epochs": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "ssl_weights": (lambda v: v is None or (isinstance(v, str) and v != ""), "null or a state dict path"),
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
    if arch == "SSL_AASIST":
        head = cfg["model_config"].get("head", "linear")
        if (settings["loss"] == "aam") != (head == "cosine"):
            raise StageError(f"'train.loss' {settings['loss']!r} needs model_config.head "
                             f"{'cosine' if settings['loss'] == 'aam' else 'linear'!r} (it is {head!r})")
    if settings["lr_min"] > settings["lr"]:
        raise StageError(f"'train.lr_min' ({settings['lr_min']}) exceeds 'train.lr' ({settings['lr']})")
