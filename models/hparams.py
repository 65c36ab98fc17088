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
    return None
