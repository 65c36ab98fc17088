"""The command line every stage script shares; the one place errors become `error: ...` lines."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import load_config
from .errors import StageError
from .registry import STAGES, Stage
from .store import os_error

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "AASIST.conf"

COMMON_HELP = """
configuration:
  A system is described by a JSON config (config/AASIST.conf = AASIST_CM,
  config/AASIST_STOPA.conf = AASIST_STOPA, config/ResNet-34.conf = ResNet-34_STOPA,
  config/demo.conf = AASIST_CM on the bundled mini corpus). --set overrides one key,
  dotted keys reach nested values, values are JSON when they parse:
    --set output_dir=runs/cm --set batch_size=1 --set model_config.nb_samp=48000
  Unknown keys are errors. Relative paths resolve against the current directory.
  See README.md for every key.

pipeline:
{stages}
"""


CHECKPOINT_HINTS = {  # architecture -> where its README section tells about its checkpoint
    "ResNet34": "; the ResNet-34_STOPA checkpoint is not public, see README.md, 'ResNet-34'",
    "SSL_AASIST": "; which published SSL-AASIST checkpoints load: README.md, 'SSL-AASIST'",
}


def require_checkpoint(config: dict) -> None:
    """A stage that loads the model says where its checkpoint goes when it is missing."""
    path = Path(config["model_path"])
    if not path.is_file():
        raise StageError(f"{path}: checkpoint of {config['system']} not found; put the checkpoint there or set "
                         "model_path" + CHECKPOINT_HINTS.get(config["model_config"].get("architecture"), ""))


def epilog() -> str:
    """The help text every stage and tool ends with: configs, overrides, the list of stages."""
    return COMMON_HELP.format(stages="\n".join(f"  {s.number}. {s.script:38s} {s.title}" for s in STAGES.values()))


def parser_for(stage: Stage) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=stage.script, description=f"Stage {stage.number}: {stage.title}.\n\nConfig keys it reads: "
        + ", ".join(stage.keys), epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, force=True)
    return parser


def add_common_arguments(parser: argparse.ArgumentParser, force: bool) -> None:
    """--config, --set, --device, (--force,) --allow-stale, -q: what every stage and tool takes."""
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="PATH",
                        help="JSON config of the system (default: config/AASIST.conf)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value; repeatable")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's 'device', auto "
                                         "= cuda when available)")
    if force:
        parser.add_argument("--force", action="store_true",
                            help="recompute even when the outputs are up to date for this config and these inputs")
    parser.add_argument("--allow-stale", action="store_true",
                        help="use upstream outputs even when they are out of date for this config")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _gpu_out_of_memory(exc: BaseException) -> bool:
    """torch's out-of-memory error (checked without importing torch: stages 2, 4, 5 never do)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ()))


def guarded(hint: str, action, resumable: bool = False) -> int:
    """Run `action()`; an expected failure prints one line `error: ...` and gives exit status 2
    (130 when interrupted), success 0. `hint` names the program in messages."""
    try:
        action()
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error(exc, resumable=resumable)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"error: {hint} ran out of memory; lower batch_size or max_seconds", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not _gpu_out_of_memory(exc):
            raise
        print(f"error: {hint} ran out of GPU memory ({str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
              f"lower batch_size or max_seconds", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the previous outputs are unchanged", file=sys.stderr)
        return 130
    return 0


def run(stage: Stage, argv: list[str] | None = None) -> int:
    """Parse the shared arguments and run `stage`; expected failures print one line, exit 2."""
    args = parser_for(stage).parse_args(argv)
    setup_logging(args.quiet)
    from .runner import run_stage

    def action():
        config = load_config(args.config, args.overrides, args.device)
        if "model_path" in stage.keys:
            require_checkpoint(config)
        run_stage(stage, config, args.force, args.allow_stale)
    return guarded(stage.hint, action, resumable=stage.number in (0, 1, 3))


def main(number: int, argv: list[str] | None = None) -> int:
    """Entry point of every stage script: `sys.exit(main(N))`."""
    return run(STAGES[number], argv)
