"""The hyper-parameters each architecture accepts in `model_config`, checked before any work.

`check_model_config(model_config)` returns None when the values fit the architecture, else
one sentence naming the key and what it expects: a typo or a string where a number belongs
is caught when the config is read, not as a traceback inside the network.
"""
from __future__ import annotations

from sourcetrace.checks import is_int, is_number


def _int(v) -> bool:
    return is_int(v, 1)


def _number(v) -> bool:
    return is_number(v, 0, strict=True)


def _pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_int(x) for x in v)


# key -> (required, test, what it expects)
AASIST = {
    "architecture": (True, lambda v: v == "AASIST", "AASIST"),
    "nb_samp": (False, _int, "a positive integer (samples of the fixed input)"),
    "first_conv": (True, _int, "a positive integer (sinc filter length)"),
    "filts": (True, lambda v: isinstance(v, list) and len(v) == 5 and _int(v[0]) and all(_pair(p) for p in v[1:]),
              "[n_filters, [in, out] x 4]"),
    "gat_dims": (True, lambda v: isinstance(v, list) and len(v) == 2 and all(_int(x) for x in v), "two positive integers"),
    "pool_ratios": (True, lambda v: isinstance(v, list) and len(v) == 4 and all(_number(x) and x <= 1 for x in v),
                    "four ratios in (0, 1]"),
    "temperatures": (True, lambda v: isinstance(v, list) and len(v) == 4 and all(_number(x) for x in v),
                     "four positive numbers"),
}
RESNET34 = {
    "architecture": (True, lambda v: v == "ResNet34", "ResNet34"),
    "max_frames": (False, _int, "a positive integer (frames kept under `fixed`)"),
    "n_mels": (False, _int, "a positive integer"),
    "blocks": (False, lambda v: isinstance(v, list) and len(v) == 4 and all(_int(x) for x in v), "four positive integers"),
    "channels": (False, lambda v: isinstance(v, list) and len(v) == 4 and all(_int(x) for x in v),
                 "four positive integers"),
    "embedding_dim": (False, _int, "a positive integer"),
}
SCHEMAS = {"AASIST": AASIST, "ResNet34": RESNET34}
# the published AASIST configuration (clovaai/aasist, AASIST.conf): the default `model_config`
AASIST_DEFAULT = {"architecture": "AASIST", "nb_samp": 64600, "first_conv": 128,
                  "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]], "gat_dims": [64, 32],
                  "pool_ratios": [0.5, 0.7, 0.5, 0.5], "temperatures": [2.0, 2.0, 100.0, 100.0]}

# SSL-AASIST. torchaudio's SSL builders by name: their transformer layers, and the arguments
# `ssl_config` may give them (tests/test_ssl_aasist.py checks both against torchaudio)
_DROPOUTS = ("encoder_projection_dropout", "encoder_attention_dropout", "encoder_ff_interm_dropout",
             "encoder_dropout", "encoder_layer_drop")
SSL_LAYERS = {"wav2vec2_base": 12, "wav2vec2_large": 24, "wav2vec2_large_lv60k": 24, "wav2vec2_xlsr_300m": 24,
              "wav2vec2_xlsr_1b": 48, "wav2vec2_xlsr_2b": 48, "hubert_base": 12, "hubert_large": 24,
              "hubert_xlarge": 48, "wavlm_base": 12, "wavlm_large": 24}
_dropout = (lambda v: is_number(v, 0) and v < 1, "a number in [0, 1)")
_GENERIC = {  # the generic builders' arguments, every one required
    "extractor_mode": (lambda v: v in ("group_norm", "layer_norm"), "'group_norm' or 'layer_norm'"),
    "extractor_conv_layer_config": (lambda v: v is None or (isinstance(v, list) and v and all(
        isinstance(c, list) and len(c) == 3 and all(_int(x) for x in c) for c in v)),
        "null or a list of [channels, kernel, stride]"),
    "extractor_conv_bias": (lambda v: isinstance(v, bool), "true or false"),
    "encoder_embed_dim": (_int, "a positive integer"),
    "encoder_pos_conv_kernel": (_int, "a positive integer"),
    "encoder_pos_conv_groups": (_int, "a positive integer"),
    "encoder_num_layers": (_int, "a positive integer"),
    "encoder_num_heads": (_int, "a positive integer"),
    "encoder_ff_interm_features": (_int, "a positive integer"),
    "encoder_layer_norm_first": (lambda v: isinstance(v, bool), "true or false"),
    **{name: _dropout for name in _DROPOUTS},
}
SSL_ARGUMENTS = {**{name: {k: _dropout for k in _DROPOUTS} for name in SSL_LAYERS},
                 "wav2vec2_model": _GENERIC,
                 "wavlm_model": {**_GENERIC, "encoder_num_buckets": (_int, "a positive integer"),
                                 "encoder_max_distance": (_int, "a positive integer")}}
SSL_AASIST = {
    "architecture": (True, lambda v: v == "SSL_AASIST", "SSL_AASIST"),
    "ssl": (False, lambda v: v in SSL_ARGUMENTS, "a torchaudio SSL builder: " + ", ".join(SSL_LAYERS)
            + ", or wav2vec2_model / wavlm_model with every argument in ssl_config"),
    "ssl_config": (False, lambda v: isinstance(v, dict), "an object of the SSL builder's keyword arguments"),
    "ssl_layer": (False, lambda v: v in ("last", "weighted") or _int(v),
                  "'last' (the encoder output), a layer number >= 1, or 'weighted'"),
    "ssl_frozen": (False, lambda v: isinstance(v, bool), "true or false"),
    "filts": (False,) + AASIST["filts"][1:2] + ("[projection size, [in, out] x 4]",),
    "gat_dims": (False,) + AASIST["gat_dims"][1:],
    "pool_ratios": (False,) + AASIST["pool_ratios"][1:],
    "temperatures": (False,) + AASIST["temperatures"][1:],
    "head": (False, lambda v: v in ("linear", "cosine"), "'linear' or 'cosine'"),
    "nb_samp": AASIST["nb_samp"],
    "window_seconds": (False, _number, "a positive number (longer inputs are embedded in windows)"),
}
SCHEMAS["SSL_AASIST"] = SSL_AASIST
# SSL-AASIST's values for the keys a model_config leaves out: the published configuration
# (SSL_Anti-spoofing model.py; `window_seconds` is this toolkit's)
SSL_AASIST_DEFAULT = {"ssl": "wav2vec2_xlsr_300m", "ssl_config": {}, "ssl_layer": "last", "ssl_frozen": False,
                      "filts": [128, [1, 32], [32, 32], [32, 64], [64, 64]], "gat_dims": [64, 32],
                      "pool_ratios": [0.5, 0.5, 0.5, 0.5], "temperatures": [2.0, 2.0, 100.0, 100.0],
                      "head": "linear", "nb_samp": 64600, "window_seconds": 30}
# what each model does with an utterance: see the README's "Input policies"
INPUT_POLICIES = ("full", "fixed", "reference")
# `max_seconds` when the config leaves it null: AASIST and ResNet-34 hold a whole utterance in
# memory (AASIST about 0.95 GB per minute); SSL-AASIST embeds long inputs in windows
MAX_SECONDS = {"SSL_AASIST": 600}
DEFAULT_MAX_SECONDS = 300


def default_max_seconds(model_config: dict) -> float:
    """The architecture's default for the config key `max_seconds` (`DEFAULT_MAX_SECONDS` unless listed)."""
    return MAX_SECONDS.get(model_config.get("architecture"), DEFAULT_MAX_SECONDS)


def _check_ssl(model_config: dict) -> str | None:
    """`ssl_config` against its builder's arguments, `ssl_layer` against its number of layers."""
    name = model_config.get("ssl", SSL_AASIST_DEFAULT["ssl"])
    ssl_config = model_config.get("ssl_config", {})
    allowed = SSL_ARGUMENTS[name]
    for key, value in ssl_config.items():
        if key not in allowed:
            return f"'ssl_config' key {key!r} is not an argument of torchaudio's {name} ({', '.join(allowed)})"
        test, expected = allowed[key]
        if not test(value):
            return f"'ssl_config.{key}' is {value!r}; expected {expected}"
    if name not in SSL_LAYERS:
        missing = [k for k in allowed if k not in ssl_config]
        if missing:
            return f"'ssl_config' lacks {', '.join(missing)}: torchaudio's {name} needs every argument"
    layer = model_config.get("ssl_layer", "last")
    n_layers = SSL_LAYERS.get(name) or ssl_config["encoder_num_layers"]
    if isinstance(layer, int) and layer > n_layers:
        return f"'ssl_layer' is {layer}; {name} has layers 1 to {n_layers}"
    return None


def check_model_config(model_config: dict) -> str | None:
    import difflib
    arch = model_config.get("architecture")
    if arch not in SCHEMAS:
        return f"'architecture' is {arch!r}; expected one of {', '.join(sorted(SCHEMAS))}"
    schema = SCHEMAS[arch]
    for key in model_config:
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            return f"unknown {arch} key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    for key, (required, test, expected) in schema.items():
        if key not in model_config:
            if required:
                return f"{key!r} is missing; expected {expected}"
        elif not test(model_config[key]):
            return f"{key!r} is {model_config[key]!r}; expected {expected}"
    return _check_ssl(model_config) if arch == "SSL_AASIST" else None
