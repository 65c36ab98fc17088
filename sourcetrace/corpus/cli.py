"""`python -m sourcetrace.corpus PRESET_OR_CONFIG MANIFEST... --out DIR [options]`.

PRESET_OR_CONFIG is `mlaad`, `asvspoof2019la`, `manifest`, or a JSON file of options
(`{"preset": "manifest", "sep": "|", "path": "utt", ...}`, keys as the long options with `_`);
options on the command line override the file's, which override the preset's defaults.
See docs/corpus_import.md.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..cli import guarded
from ..errors import StageError
from . import asvspoof2019la, design, importer, manifest, mlaad

PRESETS = {"mlaad": mlaad, "asvspoof2019la": asvspoof2019la, "manifest": manifest}
REPO = Path(__file__).resolve().parents[2]
DEFAULTS = {"seed": 0, "co_sizes": list(design.CO_SIZES), "nc_sizes": list(design.NC_SIZES), "holdout": 0.5,
            "on_error": "fail", "base_config": str(REPO / "config" / "AASIST.conf"), **manifest.DEFAULTS}
COLUMN_OPTIONS = ("path", "attack", "am", "vm", "am_archit", "vm_archit", "speaker", "text", "split")


def _sizes(text: str) -> list:
    return [t if t == "all" else int(t) for t in text.split(",") if t]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sourcetrace.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", metavar="PRESET_OR_CONFIG", help=f"{', '.join(PRESETS)}, or a JSON file of options")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", type=Path,
                   help="manifest file(s); mlaad: train.csv dev.csv eval.csv or their folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write (must be new or empty, see --force)")
    p.add_argument("--audio-root", type=Path, help="folder the manifest's audio paths start from (default: the "
                   "manifest's folder; asvspoof2019la: the folder above the protocols' folder)")
    p.add_argument("--name", help="config file name DIR/<name>.conf (default: the preset's name)")
    p.add_argument("--base-config", help="config whose model settings the written config keeps "
                   "(default config/AASIST.conf)")
    for column in COLUMN_OPTIONS:
        p.add_argument(f"--{column.replace('_', '-')}", metavar="COLUMN", help=f"{column} column of the manifest")
    p.add_argument("--sep", help="separator: comma, tab, pipe, space or the character (default: from the header)")
    p.add_argument("--suffix", help="appended to every audio path (e.g. .wav when the manifest has bare ids)")
    p.add_argument("--train-split", help="split value of training rows (default train)")
    p.add_argument("--enroll-split", help="split value (mlaad: file) of enrollment rows (default dev)")
    p.add_argument("--trial-split", help="split value of trial rows (default eval)")
    p.add_argument("--known", type=lambda t: [a for a in t.split(",") if a],
                   help="known (enrolled) attacks, comma-separated (default: the training split's)")
    p.add_argument("--co-sizes", type=_sizes, help="co enrollment sizes (default 1,10,100,400)")
    p.add_argument("--nc-sizes", type=_sizes, help="nc enrollment sizes (default 1,10,100,400,1000,all)")
    p.add_argument("--holdout", type=float, help="fraction of a known attack's enrollment utterances held out as "
                   "trials when it has no trial utterances (default 0.5)")
    p.add_argument("--seed", type=int, help="seed of every draw (default 0)")
    p.add_argument("--on-error", choices=("fail", "skip"), help="a known attack too small to enroll: fail "
                   "(default) or skip it with a warning")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    return p


def options(args: argparse.Namespace) -> tuple[str, dict]:
    """(preset name, merged options): command line over JSON file over preset over defaults."""
    from_file: dict = {}
    preset = args.preset
    if preset not in PRESETS:
        path = Path(preset)
        if not path.is_file():
            raise StageError(f"{preset}: neither a preset ({', '.join(PRESETS)}) nor an options file")
        try:
            from_file = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise StageError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
        if not isinstance(from_file, dict) or from_file.get("preset") not in PRESETS:
            raise StageError(f"{path}: an options file is a JSON object with \"preset\" one of {', '.join(PRESETS)}")
        preset = from_file.pop("preset")
        known_keys = set(vars(args)) - {"preset", "manifests"}
        unknown = sorted(set(from_file) - known_keys)
        if unknown:
            raise StageError(f"{path}: unknown option(s) {', '.join(unknown)}")
    merged = {**DEFAULTS, **PRESETS[preset].DEFAULTS, **from_file,
              **{k: v for k, v in vars(args).items() if v not in (None, False) and k not in ("preset", "manifests")}}
    for key in ("audio_root", "out"):
        if merged.get(key) is not None:
            merged[key] = Path(merged[key])
    return preset, merged


def run(argv: list[str] | None = None) -> tuple[Path, str]:
    args = parser().parse_args(argv)
    preset, opts = options(args)
    utterances, known, labels = PRESETS[preset].load(args.manifests, opts)
    root = opts.get("audio_root")
    if root is None:
        first = Path(args.manifests[0])
        root = first.parent.parent if preset == "asvspoof2019la" else (first if first.is_dir() else first.parent)
    try:
        base = json.loads(Path(opts["base_config"]).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(f"{opts['base_config']}: cannot read the base config ({exc})") from None
    shown = {k: opts[k] for k in ("seed", "co_sizes", "nc_sizes", "holdout", "on_error")}
    shown.update({k: opts[k] for k in COLUMN_OPTIONS if opts.get(k)})
    title = f"corpus import ({preset}): {', '.join(str(m) for m in args.manifests)}"
    return importer.import_corpus(
        utterances, known, labels=labels, audio_root=Path(root), out=opts["out"], name=opts.get("name") or preset,
        base_config=base, title=title, options=shown, seed=opts["seed"], co_sizes=opts["co_sizes"],
        nc_sizes=opts["nc_sizes"], holdout=opts["holdout"], on_error=opts["on_error"], force=opts.get("force", False))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    done = {}

    def action():
        done["config"], done["text"] = run(argv)

    status = guarded("python -m sourcetrace.corpus", action)
    if status == 0:
        print(done["text"], end="")
        print(f"wrote {done['config'].parent} (summary.txt, attacks.tsv, protocols); run the stages with "
              f"--config {done['config']}")
    return status
