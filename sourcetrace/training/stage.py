"""Stage 0: train the system's embedding extractor on a training protocol.

Outputs, under `<output_dir>/<system>_training/`: `best.pth` (+ `best.classes.txt`), the
checkpoint the five stages load (point `model_path` at it), `last.pt` (the final training
state) and `history.csv`. While it runs, the same files live in the stage's work folder,
which survives a killed run: started again with the same config, training resumes after
the last finished epoch.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

import models

from ..errors import StageError
from ..extraction.device import resolve_device
from ..stage_result import Skip, StageResult
from ..store import audio_identity, file_digest
from . import checkpoints, data, loop, recipes
from .settings import architecture, train_settings

OUTPUTS = ("best.pth", "best.classes.txt", "last.pt", "history.csv")


def _usable(ctx, rows: list[data.TrainRow]) -> tuple[list[data.TrainRow], list[Skip]]:
    """Rows whose audio decodes; each rank checks a share, every rank gets the same answer."""
    cfg, world = ctx.cfg, ctx.world
    paths = [data.audio_path(cfg["train_audio"], cfg["database_path"], r) for r in rows]
    mine = {i: data.audio_problem(paths[i]) for i in range(world.rank, len(rows), world.size)}
    problems = {i: p for share in world.all_gather(mine) for i, p in share.items() if p is not None}
    skipped = []
    for i in sorted(problems):
        if cfg["on_error"] != "skip":
            raise StageError(f"{rows[i].where}: {problems[i]}")
        skipped.append(Skip(0, str(rows[i].protocol), rows[i].line, rows[i].attack, rows[i].file, problems[i]))
    return [r for i, r in enumerate(rows) if i not in problems], skipped


def inputs(cfg) -> dict:
    """Identities of what training reads besides its config values: the `train` settings with
    the recipe's defaults (less `num_workers`, which changes no result; `init` and
    `ssl_weights` as the SHA-256 of the file they name), the protocols (content) and their
    audio (size and time)."""
    settings = {k: v for k, v in train_settings(cfg).items() if k != "num_workers"}
    for key in ("init", "ssl_weights"):  # checkpoints it starts from, by content
        if settings.get(key):
            settings[key] = file_digest(Path(settings[key])) if Path(settings[key]).is_file() else "missing"
    found = {"train_settings": settings}
    for key in ("train_protocol", "dev_protocol"):
        if cfg[key]:
            path = Path(cfg[key])
            found[key + "_sha256"] = file_digest(path) if path.is_file() else "missing"
            if path.is_file():
                rows = data.read_protocol(path)
                found[key.replace("protocol", "audio")] = audio_identity(
                    ((r.attack, r.file), data.audio_path(cfg["train_audio"], cfg["database_path"], r)) for r in rows)
    return found


def _dataset(cfg, rows, classes, length, seed, random_crop):
    target = cfg["train_target"]
    return data.CropDataset([data.audio_path(cfg["train_audio"], cfg["database_path"], r) for r in rows],
                            [classes.index(r.target(target)) for r in rows], length, seed, random_crop)


def _rows(ctx, s: dict):
    """Training rows, dev rows, skips and the sorted class list."""
    cfg, target = ctx.cfg, ctx.cfg["train_target"]
    rows, skipped = _usable(ctx, data.read_protocol(cfg["train_protocol"]))
    dev_rows = []
    if cfg["dev_protocol"]:
        dev_rows, dev_skipped = _usable(ctx, data.read_protocol(cfg["dev_protocol"]))
        skipped += dev_skipped
    elif cfg["dev_fraction"] > 0:
        rows, dev_rows = data.dev_split(rows, cfg["dev_fraction"], s["seed"], target)
    if not rows:
        raise StageError(f"{cfg['train_protocol']}: no usable training utterance")
    classes = sorted({r.target(target) for r in rows})
    if len(classes) < 2:
        raise StageError(f"{cfg['train_protocol']}: every training row is of one class ({classes[0]!r} by "
                         f"train_target '{target}'); training needs at least two")
    for row in dev_rows:
        if row.target(target) not in classes:
            raise StageError(f"{row.where}: dev class {row.target(target)!r} is not a training class "
                             f"({', '.join(classes)})")
    return rows, dev_rows, skipped, classes


def _model(cfg, arch: str, s: dict, classes: list[str]) -> torch.nn.Module:
    """The configured network, seeded, initialised as the recipe says, ready to train."""
    torch.manual_seed(s["seed"])
    model = models.ARCHITECTURES[arch](cfg["model_config"], len(classes), "fixed")
    recipes.init_untrained(model)
    recipes.freeze_unused(model)
    recipes.attach_spec_augment(model, s)
    if s.get("ssl_weights"):
        checkpoints.load_ssl_weights(model, Path(s["ssl_weights"]))
    if s["init"]:
        checkpoints.init_from(model, arch, cfg["model_config"], Path(s["init"]), classes, s["init_head"])
    return model


def _need_train_protocol(cfg) -> None:
    if cfg["train_protocol"] is None:
        raise StageError("'train_protocol' is not set: a training protocol (rows SPEAKER FILE - ATTACK LABEL) "
                         "is needed to train")


def save_untrained(cfg, path: Path) -> list[str]:
    """Write the network stage 0 would start from (the seeded initialisation of `cfg`, its
    head sized by the training protocol's classes) as a checkpoint the stages load, as
    `best.pth` is written; returns the classes. The baseline that shows what training adds."""
    arch, s = architecture(cfg), train_settings(cfg)
    _need_train_protocol(cfg)
    classes = sorted({r.target(cfg["train_target"]) for r in data.read_protocol(cfg["train_protocol"])})
    model = _model(cfg, arch, s, classes)
    checkpoints.save_best(Path(path), arch, model.state_dict(), classes, 0, cfg["system"], cfg["model_config"])
    return classes


def run(ctx) -> StageResult | None:
    cfg, world = ctx.cfg, ctx.world
    _need_train_protocol(cfg)
    if cfg["precision"] not in ("fp32", "bf16"):
        raise StageError(f"'precision' is {cfg['precision']!r}; training runs in fp32 or bf16")
    arch, s = architecture(cfg), train_settings(cfg)
    rows, dev_rows, skipped, classes = _rows(ctx, s)
    if world.is_main:
        print(f"{cfg['system']}: {len(classes)} classes ({', '.join(classes)}); {len(rows)} training and "
              f"{len(dev_rows)} dev utterances")
    if s["batch_size"] % world.size:
        raise StageError(f"'train.batch_size' {s['batch_size']} is not divisible by the {world.size} processes")
    if -(-len(rows) // world.size) < s["batch_size"] // world.size:
        raise StageError(f"'train.batch_size' {s['batch_size']} exceeds the {len(rows)} training utterances "
                         f"(incomplete batches are dropped)")
    model = _model(cfg, arch, s, classes)
    length = recipes.crop_samples(s, model)
    if length < model.min_samples:
        raise StageError(f"'train.crop_*' gives {length}-sample crops; {arch} needs at least {model.min_samples}")

    # the work folder is keyed by the stage's identity; a saved state also needs the same
    # number of processes (each rank's share of a batch, and so the trajectory, depends on it)
    key = f"{ctx.key}:{world.size}"
    work = Path(ctx.work_dir)
    loop.fit(loop.Job(model=model, arch=arch, settings=s, classes=classes,
                      train_set=_dataset(cfg, rows, classes, length, s["seed"], True),
                      dev_set=_dataset(cfg, dev_rows, classes, length, s["seed"], False) if dev_rows else None,
                      device=resolve_device(cfg["device"]), precision=cfg["precision"], world=world, work=work,
                      key=key, system=cfg["system"],
                      model_config=cfg["model_config"]))
    if not world.is_main:
        return None
    outputs = []
    for name in OUTPUTS:
        final = Path(ctx.paths.training_dir) / name
        shutil.copyfile(work / name, ctx.output(final))
        outputs.append(final)
    return StageResult(outputs, skipped, work=[work])
