"""JSON configuration of a system: defaults, `--set` overrides, validation of every value.

A config file is a JSON object; keys missing from it take the defaults of `SCHEMA`. An
unknown key, from the file or from `--set`, is an error with a did-you-mean. Overrides come
as `KEY=VALUE` strings: dotted keys reach nested objects (`model_config.nb_samp=48000`) and
the value is JSON when it parses, else a plain string. Every value is checked before any
work; relative paths are resolved once against the current directory.
"""
from __future__ import annotations

import copy
import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.hparams import AASIST_DEFAULT, INPUT_POLICIES, check_model_config, default_max_seconds

from .checks import is_int, is_number
from .errors import StageError

KNOWN_ATTACKS = ["AA01", "AA03", "AA05", "AA07", "AA10"]
UNKNOWN_FILTERS = ("reference", "per_label")
PRECISION_NAMES = ("fp32", "bf16", "fp16")
BACKENDS = ("cosine", "centered", "asnorm", "knn")  # stage 4's score back-ends (sourcetrace.scoring)
PATH_KEYS = ("model_path", "database_path", "enroll_protocol_dir", "trial_protocol_dir", "output_dir",
             "train_protocol", "dev_protocol")


@dataclass(frozen=True)
class Key:
    default: object
    check: Callable[[object], str | None]  # None when valid, else what is expected


def _choice(*options: str):
    return lambda v: None if v in options else f"one of {', '.join(options)}"


def _int(low: int):
    return lambda v: None if is_int(v, low) else f"an integer >= {low}"


def _number(low: float):
    return lambda v: None if is_number(v, low, strict=True) else f"a number > {low}"


def _string(v):
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _system(v):
    ok = isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", v) is not None
    return None if ok else ("a name of letters, digits and . _ + - (it prefixes every output file in output_dir, "
                            "so no / and no leading dot)")


def _device(v):
    ok = isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None
    return None if ok else "auto, cpu, cuda or cuda:N"


def _template(v):
    if not isinstance(v, str) or "{file}" not in v:
        return "a path template containing {file}"
    names = set(re.findall(r"{([^{}]*)}", v))
    extra = names - {"database_path", "attack", "file"}
    return f"a template using only {{database_path}}, {{attack}}, {{file}} (not {{{sorted(extra)[0]}}})" if extra else None


def _attack_list(v):
    ok = isinstance(v, list) and v and all(isinstance(a, str) and a for a in v) and len(set(v)) == len(v)
    return None if ok else "a non-empty list of distinct attack ids"


def _operating_points(v):
    ok = isinstance(v, list) and v and all(
        isinstance(p, list) and len(p) == 3 and all(is_number(x) for x in p)
        and 0 < p[0] < 1 and p[1] > 0 and p[2] > 0 for p in v)
    if ok and len({tuple(p) for p in v}) < len(v):
        return "a list of distinct [p_target, c_miss, c_fa] (one is repeated)"
    return None if ok else "a non-empty list of [p_target, c_miss, c_fa] with 0 < p_target < 1 and costs > 0"


def _optional_path(v):
    return None if v is None or (isinstance(v, str) and v.strip()) else "null or a path"


def _fraction(v):
    ok = is_number(v, 0) and v < 1
    return None if ok else "a number >= 0 and < 1 (0: no dev set, the last epoch is kept)"


def _max_seconds(v):
    return None if v is None or is_number(v, 0, strict=True) else "a number > 0, or null (the architecture's default)"


def _bool(v):
    return None if isinstance(v, bool) else "true or false"


def _object(v):
    return None if isinstance(v, dict) else "an object"


SCHEMA: dict[str, Key] = {
    "system": Key("AASIST_CM", _system),
    "model_path": Key("models/AASIST_CM.pth", _string),
    # checked against its architecture's hyper-parameters (models/hparams.py) by `validate`
    "model_config": Key(AASIST_DEFAULT, _object),
    "database_path": Key("STOPA", _string),
    "enroll_protocol_dir": Key("protocols_fingerprint_extraction", _string),
    "trial_protocol_dir": Key("protocols_trials_extended", _string),
    "enroll_audio": Key("{database_path}/wav/{attack}/dev/{file}", _template),
    "trial_audio": Key("{database_path}/wav/{attack}/eval/{file}", _template),
    "known_attacks": Key(KNOWN_ATTACKS, _attack_list),
    "input_policy": Key("full", _choice(*INPUT_POLICIES)),
    "batch_size": Key(8, _int(1)),
    "num_workers": Key(2, _int(0)),
    "device": Key("auto", _device),
    "output_dir": Key(".", _string),
    "unknown_filter": Key("reference", _choice(*UNKNOWN_FILTERS)),
    "on_error": Key("fail", _choice("fail", "skip")),
    "chunk_size": Key(512, _int(1)),
    "precision": Key("fp32", _choice(*PRECISION_NAMES)),
    # null: the architecture's default (models.hparams.default_max_seconds). AASIST under `full` needs
    # about 0.95 GB of memory per minute of audio: 300 s (4.7 GB for one utterance) leaves a
    # 24 GB machine room for decoding ahead and the rest of a batch; SSL_AASIST embeds long
    # inputs in windows (bounded memory) and allows 600 s
    "max_seconds": Key(None, _max_seconds),
    # under `full`, batch utterances of nearby lengths, zero-padded, each embedded as if alone
    # (false: only equal lengths share a batch); changes no embedding beyond float rounding
    "exact_batching": Key(True, _bool),
    # under `reference`, stage 3 batches the rows of this trial file in its order (the published
    # scripts extracted one file's utterances and attached them to every file by row order)
    "reference_trial_file": Key("AA01-co-100", _string),
    # stage 4's score back-end and its parameters (sourcetrace.scoring.backends)
    "backend": Key("cosine", _choice(*BACKENDS)),
    "asnorm_top_n": Key(100, _int(1)),
    "knn_k": Key(5, _int(1)),
    "dcf_operating_points": Key([[0.01, 1, 1], [0.1, 1, 1]], _operating_points),
    "bootstrap_resamples": Key(200, _int(0)),
    "bootstrap_seed": Key(0, _int(0)),
    # stage 0 (training); `train` is checked against the architecture's recipe by `validate`
    # (sourcetrace.training.settings)
    "train_protocol": Key(None, _optional_path),
    "train_audio": Key("{database_path}/wav/{attack}/train/{file}.flac", _template),
    "dev_protocol": Key(None, _optional_path),
    "dev_fraction": Key(0.1, _fraction),
    "train_target": Key("attack", _choice("attack", "label")),
    "train": Key({}, _object),
}


def parse_override(text: str) -> tuple[list[str], object]:
    """`a.b=1` -> (["a", "b"], 1); the value is JSON when it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise StageError(f"--set {text!r}: expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_override(config: dict, path: list[str], value: object) -> None:
    node = config
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise StageError(f"--set {'.'.join(path)}: {part!r} is not an object in the config")
        node = child
    node[path[-1]] = value


def _unknown(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _line_of_key(text: str, key: str) -> str:
    """':<line>' of the first `"key":` in a JSON text, or '' when not found."""
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return f":{text.count(chr(10), 0, match.start()) + 1}" if match else ""


def validate(config: dict, source: str) -> None:
    """Every value against the schema, the architecture's hyper-parameters in `model_config`
    and the `train` section against the architecture's recipe: the one place config values
    are checked, before any stage starts."""
    from .training.settings import validate_train_section
    for key, spec in SCHEMA.items():
        expected = spec.check(config[key])
        if expected:
            raise StageError(f"{source}: {key!r} is {config[key]!r}; expected {expected}")
    problem = check_model_config(config["model_config"])
    if problem:
        raise StageError(f"{source}: model_config: {problem}")
    if config["max_seconds"] is None:  # resolved here, so records hold the value in force
        config["max_seconds"] = default_max_seconds(config["model_config"])
    try:
        validate_train_section(config)
    except StageError as exc:
        raise StageError(f"{source}: {exc}") from None


def load_config(path: str | Path, overrides: list[str] = (), device: str | None = None) -> dict:
    """Read a JSON config, fill defaults, apply `--set` overrides and `--device`, validate.

    Paths (`model_path`, `database_path`, the protocol folders, `output_dir`) come back
    absolute, so the same file named two ways is the same value.
    """
    path = Path(path)
    try:
        text = path.read_text()
        user = json.loads(text)
    except FileNotFoundError:
        raise StageError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StageError(f"{path}: cannot read the config ({exc})") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(user, dict):
        raise StageError(f"{path}: a config must be a JSON object")
    for key in user:
        if key not in SCHEMA:
            raise StageError(f"{path}{_line_of_key(text, key)}: {_unknown(key, SCHEMA)}")
    config = copy.deepcopy({key: spec.default for key, spec in SCHEMA.items()})
    config.update(user)
    for item in overrides:
        keys, value = parse_override(item)
        if keys[0] not in SCHEMA:
            raise StageError(f"--set {item}: {_unknown(keys[0], SCHEMA)}")
        apply_override(config, keys, value)
    if device:
        config["device"] = device
    validate(config, str(path))
    for key in PATH_KEYS:
        if config[key] is not None:
            config[key] = os.path.abspath(os.path.expanduser(config[key]))
    config["config_path"] = str(path)
    return config
