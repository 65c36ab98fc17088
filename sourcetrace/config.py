"""JSON configuration of a system, with command-line overrides.

A config file is a JSON object; keys missing from it take the defaults below. Overrides
come as `KEY=VALUE` strings: dotted keys reach nested objects (`model_config.nb_samp=48000`)
and the value is parsed as JSON when it parses, else taken as a plain string.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from .errors import StageError

KNOWN_ATTACKS = ["AA01", "AA03", "AA05", "AA07", "AA10"]
INPUT_POLICIES = ("full", "fixed", "reference")
UNKNOWN_FILTERS = ("reference", "per_label")
ON_ERROR = ("fail", "skip")
PRECISIONS = ("fp32", "bf16", "fp16")

DEFAULTS = {
    "system": "AASIST_CM",
    "model_path": "models/AASIST_CM.pth",
    "model_config": {},
    "database_path": "STOPA",
    "enroll_protocol_dir": "protocols_fingerprint_extraction",
    "trial_protocol_dir": "protocols_trials_extended",
    "enroll_audio": "{database_path}/wav/{attack}/dev/{file}",
    "trial_audio": "{database_path}/wav/{attack}/eval/{file}",
    "known_attacks": KNOWN_ATTACKS,
    "input_policy": "full",
    "batch_size": 8,
    "num_workers": 2,
    "device": "auto",
    "output_dir": ".",
    "unknown_filter": "reference",
    "on_error": "fail",
    "chunk_size": 512,
    "precision": "fp32",
    "max_seconds": 300,
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


def validate(config: dict, source: str) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise StageError(f"{source}: {msg}")

    need(isinstance(config["system"], str) and config["system"] != "", "'system' must be a non-empty string")
    need(config["input_policy"] in INPUT_POLICIES,
         f"'input_policy' is {config['input_policy']!r}; expected one of {', '.join(INPUT_POLICIES)}")
    need(config["unknown_filter"] in UNKNOWN_FILTERS,
         f"'unknown_filter' is {config['unknown_filter']!r}; expected one of {', '.join(UNKNOWN_FILTERS)}")
    need(config["on_error"] in ON_ERROR, f"'on_error' is {config['on_error']!r}; expected fail or skip")
    need(config["precision"] in PRECISIONS,
         f"'precision' is {config['precision']!r}; expected one of {', '.join(PRECISIONS)}")
    need(isinstance(config["batch_size"], int) and config["batch_size"] >= 1, "'batch_size' must be an integer >= 1")
    need(isinstance(config["chunk_size"], int) and config["chunk_size"] >= 1, "'chunk_size' must be an integer >= 1")
    need(isinstance(config["num_workers"], int) and config["num_workers"] >= 0, "'num_workers' must be an integer >= 0")
    need(isinstance(config["max_seconds"], (int, float)) and not isinstance(config["max_seconds"], bool)
         and config["max_seconds"] > 0, "'max_seconds' must be a number > 0")
    need(isinstance(config["known_attacks"], list) and all(isinstance(a, str) for a in config["known_attacks"]),
         "'known_attacks' must be a list of attack ids")
    need(isinstance(config["model_config"], dict), "'model_config' must be an object")
    for key in ("enroll_audio", "trial_audio"):
        need("{file}" in config[key], f"'{key}' must contain {{file}}")


def load_config(path: str | Path, overrides: list[str] = (), device: str | None = None) -> dict:
    """Read a JSON config, fill defaults, apply `--set` overrides and `--device`, validate."""
    path = Path(path)
    try:
        user = json.loads(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path}: config file not found") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(user, dict):
        raise StageError(f"{path}: a config must be a JSON object")
    config = copy.deepcopy(DEFAULTS)
    config.update(user)
    for text in overrides:
        apply_override(config, *parse_override(text))
    if device:
        config["device"] = device
    validate(config, str(path))
    config["config_path"] = str(path)
    return config
