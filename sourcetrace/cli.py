"""The command line every stage script shares: --config, --set, --device, --help."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from . import provenance
from .config import load_config
from .errors import StageError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "AASIST.conf"

COMMON_HELP = """
configuration:
  A system is described by a JSON config (config/AASIST.conf = AASIST_CM,
  config/AASIST_STOPA.conf = AASIST_STOPA, config/ResNet-34.conf = ResNet-34_STOPA,
  config/demo.conf = AASIST_CM on the bundled mini corpus). --set overrides one key,
  dotted keys reach nested values, values are JSON when they parse:
    --set output_dir=runs/cm --set batch_size=1 --set model_config.nb_samp=48000
  Relative paths in the config resolve against the current working directory.
  See README.md for every key.
"""


def require_checkpoint(config: dict) -> None:
    """Every stage belongs to one system: without its checkpoint, say where it goes."""
    path = Path(config["model_path"])
    if not path.is_file():
        raise StageError(f"{path}: checkpoint of {config['system']} not found (relative paths resolve against "
                         f"{Path.cwd()}); put the checkpoint there or set model_path"
                         + ("; the ResNet-34_STOPA checkpoint is not public, see README.md, 'ResNet-34'"
                            if config["model_config"].get("architecture") == "ResNet34" else ""))


def execute(number: int, stage: Callable, config: dict, force: bool = False, allow_stale: bool = False) -> bool:
    """Run stage `number` unless it is up to date; record what produced its outputs.

    Returns False when the stage was up to date and nothing ran.
    """
    from .stages import write_skip_manifest  # the stages import torch: only when a stage runs

    upstream = provenance.check_upstream(config, number, allow_stale)
    wanted = provenance.current_record(config, number, upstream)
    if not force and provenance.up_to_date(config, number, wanted):
        print(f"stage {number} ({provenance.SCRIPTS[number]}) is up to date for {config['system']} "
              f"in {config['output_dir']}; --force recomputes")
        return False
    provenance.record_path(config, number).unlink(missing_ok=True)  # outputs are about to change
    result = stage(config, upstream)
    provenance.save_record(config, wanted, result.outputs, result.skipped)
    write_skip_manifest(config, [r for r in (provenance.load_record(config, n) for n in provenance.SCRIPTS) if r])
    if result.skipped:
        print(f"stage {number}: {len(result.skipped)} skipped (on_error=skip), listed in "
              f"{Path(config['output_dir']) / (config['system'] + '_skipped.csv')}")
    return True


def run_stage(number: int, stage: Callable, description: str, argv: list[str] | None = None) -> int:
    """Parse the shared arguments, run stage `number`; expected failures print one line."""
    parser = argparse.ArgumentParser(description=description, epilog=COMMON_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="PATH",
                        help="JSON config of the system (default: config/AASIST.conf)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value; repeatable")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's 'device', auto "
                                         "= cuda when available)")
    parser.add_argument("--force", action="store_true",
                        help="recompute even when the outputs are up to date for this config and these inputs")
    parser.add_argument("--allow-stale", action="store_true",
                        help="use upstream outputs even when they were produced under other config values")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        config = load_config(args.config, args.overrides, args.device)
        require_checkpoint(config)
        execute(number, stage, config, args.force, args.allow_stale)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
