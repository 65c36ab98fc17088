"""The epoch loop: data-parallel steps, dev evaluation, model selection, resumable state.

One process or many (torchrun): every rank runs `fit`. The data order of an epoch is
`DistributedSampler(seed=train.seed).set_epoch(epoch)` for any number of ranks (one rank
reads the whole permutation). Each rank takes `batch_size / world_size` utterances a step,
so the effective batch is the recipe's; gradients are averaged by DistributedDataParallel.
BatchNorm layers normalise with each rank's own batch statistics (no SyncBatchNorm: it
would add a collective per layer for batches that stay large enough per rank); their running
statistics are rank 0's, which DDP broadcasts at every forward and `fit` once more before
the dev evaluation, so the evaluated and saved model are rank 0's.

Resume: after every epoch rank 0 writes `last.pt` (see checkpoints); a run started again
continues after the last finished epoch. The global torch generator (SpecAugment's masks)
is re-seeded from (seed, epoch, rank) at every epoch start, crops depend on (seed, epoch,
utterance) and the algorithms are deterministic, so on CPU a resumed run repeats bitwise
what the uninterrupted one computes.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..ranks import World
from ..store import write_text
from ..testhooks import kill_point
from . import checkpoints, recipes

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "dev_loss", "dev_accuracy", "lr", "seconds",
                   "utterances_per_s")
log = logging.getLogger(__name__)


@dataclass
class Job:
    """Everything `fit` trains with; `work` holds last.pt, best.pth and history.csv."""

    model: torch.nn.Module
    arch: str
    settings: dict
    classes: list[str]
    train_set: torch.utils.data.Dataset
    dev_set: torch.utils.data.Dataset | None
    device: torch.device
    precision: str
    world: World
    work: Path
    key: str
    system: str
    model_config: dict


def history_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row[k] is None else repr(row[k])) for k in HISTORY_COLUMNS} for row in history)
    return out.getvalue()


def _autocast(job: Job):
    if job.precision == "bf16":
        return torch.autocast(job.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _totals(world: World, values: list[float]) -> list[float]:
    """Sum of `values` over ranks, summed in rank order (the same on every rank)."""
    return [sum(col) for col in zip(*world.all_gather(values))]


def _broadcast_buffers(world: World, module: torch.nn.Module) -> None:
    if world.distributed:
        import torch.distributed as dist
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def recalibrate_batchnorm(job: Job, model: torch.nn.Module, loader: DataLoader) -> None:
    """Re-estimate every BatchNorm's running statistics as the plain average over the first
    `train.bn_batches` batches of `loader`, with the weights as they are now (PyTorch's
    `update_bn`, as SWA does it).

    The running averages kept during the epoch trail weights that change fast; after a few
    hundred steps (a small training set) they can be far enough off that the eval-mode
    network predicts one class. Each rank averages its own batches; rank 0's are kept."""
    with _autocast(job):
        update_bn(itertools.islice(loader, job.settings["bn_batches"]), model, job.device)


def dev_loss_and_accuracy(job: Job, module: torch.nn.Module, loss_fn, batch: int) -> tuple[float, float]:
    """Mean loss and accuracy on the dev set, each rank a contiguous share of it."""
    _broadcast_buffers(job.world, module)
    n = len(job.dev_set)
    lo, hi = n * job.world.rank // job.world.size, n * (job.world.rank + 1) // job.world.size
    loader = DataLoader(torch.utils.data.Subset(job.dev_set, range(lo, hi)), batch_size=batch,
                        num_workers=job.settings["num_workers"])
    loss_sum = correct = 0.0
    module.eval()
    with torch.no_grad(), _autocast(job):
        for waves, targets in loader:
            waves, targets = waves.to(job.device), targets.to(job.device)
            _, logits = module(waves)
            loss_sum += float(loss_fn(logits.float(), targets)) * len(targets)
            correct += float((logits.argmax(1) == targets).sum())
    module.train()
    loss_sum, correct = _totals(job.world, [loss_sum, correct])
    return loss_sum / n, correct / n


def fit(job: Job) -> list[dict]:
    """Train for `train.epochs` epochs (or what is left of them); rank 0 keeps `work`
    up to date. Returns the history (one dict per epoch)."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    # CUDA's cuBLAS is deterministic only with a fixed workspace (read when cuBLAS starts)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        return _fit(job)
    finally:  # the process may go on to other work (tests, a notebook)
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = benchmark


def _fit(job: Job) -> list[dict]:
    s, world = job.settings, job.world
    per_rank = s["batch_size"] // world.size
    model = job.model.to(job.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = recipes.optimizer(s, params)
    steps_per_epoch = recipes.total_steps(len(job.train_set), per_rank, world.size, 1)
    sched = recipes.scheduler(s, opt, steps_per_epoch * s["epochs"])
    history, best, start = [], None, 0
    state = checkpoints.load_last(job.work / "last.pt", job.key)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        checkpoints.set_rng_state(state["rng"])
        history, best, start = state["history"], state["best"], state["epoch"]
        if world.is_main:
            print(f"resuming {job.system} after epoch {start} of {s['epochs']} ({job.work / 'last.pt'})")
    module = model
    if world.distributed:
        # an SSL front-end may leave parameters without gradient in a step (frozen for the first
        # epochs, LayerDrop of torchaudio's builders): DDP must expect that for SSL-AASIST
        module = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[job.device.index] if job.device.type == "cuda" else None,
            find_unused_parameters=job.arch == "SSL_AASIST")
    quiet = not world.is_main or logging.getLogger().getEffectiveLevel() > logging.INFO

    for epoch in range(start, s["epochs"]):
        began = time.perf_counter()
        job.train_set.epoch = epoch
        sampler = DistributedSampler(job.train_set, num_replicas=world.size, rank=world.rank, shuffle=True,
                                     seed=s["seed"])
        sampler.set_epoch(epoch)
        loader = DataLoader(job.train_set, batch_size=per_rank, sampler=sampler, drop_last=True,
                            num_workers=s["num_workers"], pin_memory=job.device.type == "cuda",
                            generator=torch.Generator().manual_seed(s["seed"] + epoch))
        torch.manual_seed((s["seed"] * 1_000_003 + epoch) * 1009 + world.rank)
        loss_sum = correct = seen = 0.0
        loss_fn = recipes.loss_function(s, job.classes, epoch)
        if s.get("ssl_frozen_epochs"):
            model.ssl_frozen_now = epoch < s["ssl_frozen_epochs"]
        module.train()
        bar = tqdm(loader, desc=f"{job.system} epoch {epoch + 1}/{s['epochs']}", unit="batch", disable=quiet)
        for step, (waves, targets) in enumerate(bar, start=epoch * steps_per_epoch + 1):
            kill_point(f"train-step-{step}")  # tests: SOURCETRACE_TEST_KILL_AT=train-step-N
            waves, targets = waves.to(job.device, non_blocking=True), targets.to(job.device, non_blocking=True)
            mix = recipes.mixup_draw(s, epoch, step, world.rank, len(targets))
            if mix is not None:
                model.mixup = (mix[0].to(job.device), mix[1])
            with _autocast(job):
                _, logits = module(waves)
            if mix is not None:
                model.mixup = None
            loss = loss_fn(logits.float(), targets)
            if mix is not None:  # the mixed inputs' loss: lam on their own classes, 1 - lam on their partners'
                loss = mix[1] * loss + (1 - mix[1]) * loss_fn(logits.float(), targets[mix[0].to(job.device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(targets)
            correct += float((logits.argmax(1) == targets).sum())
            seen += len(targets)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                            utt_s=f"{seen * world.size / (time.perf_counter() - began):.1f}")
        train_seconds = time.perf_counter() - began
        loss_sum, correct, seen = _totals(world, [loss_sum, correct, seen])
        if s["bn_batches"]:
            recalibrate_batchnorm(job, model, loader)
        dev_loss = dev_acc = None
        if job.dev_set is not None:
            dev_loss, dev_acc = dev_loss_and_accuracy(job, module.module if world.distributed else module, loss_fn, per_rank)
        else:
            _broadcast_buffers(world, model)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "dev_loss": dev_loss, "dev_accuracy": dev_acc, "lr": sched.get_last_lr()[0],
               "seconds": round(time.perf_counter() - began, 3), "utterances_per_s": round(seen / train_seconds, 2)}
        history.append(row)
        # model selection: lowest dev loss, the earlier epoch on a tie; without a dev set, the last
        improved = best is None or dev_loss is None or dev_loss < best["dev_loss"]
        if improved:
            best = {"epoch": epoch + 1, "dev_loss": dev_loss}
        if world.is_main:
            if improved:
                checkpoints.save_best(job.work / "best.pth", job.arch, model.state_dict(), job.classes,
                                      epoch + 1, job.system, job.model_config)
            checkpoints.save_last(job.work / "last.pt", key=job.key, model=model, optimizer=opt, scheduler=sched,
                                  epoch=epoch + 1, history=history, best=best)
            write_text(job.work / "history.csv", history_csv(history))
            dev = "" if dev_loss is None else f", dev loss {dev_loss:.4f}, dev accuracy {dev_acc:.3f}"
            print(f"epoch {epoch + 1}/{s['epochs']}: train loss {row['train_loss']:.4f}, accuracy "
                  f"{row['train_accuracy']:.3f}{dev}, {row['utterances_per_s']:.1f} utt/s"
                  + (" (best so far)" if improved and dev_loss is not None else ""))
        world.barrier()
    return history
