"""The command line every stage script shares: --config, --set, --device, --help."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

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


def run_stage(stage: Callable[[dict], object], description: str, argv: list[str] | None = None) -> int:
    """Parse the shared arguments, run `stage(config)`; expected failures print one line."""
    parser = argparse.ArgumentParser(description=description, epilog=COMMON_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="PATH",
                        help="JSON config of the system (default: config/AASIST.conf)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value; repeatable")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's 'device', auto "
                                         "= cuda when available)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        config = load_config(args.config, args.overrides, args.device)
        require_checkpoint(config)
        stage(config)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
