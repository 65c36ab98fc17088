"""Which of torchrun's processes this is, and the few collectives the stages need.

A script that runs alone also runs under `torchrun` unchanged: the launcher sets `RANK`,
`WORLD_SIZE`, `LOCAL_RANK` and `LOCAL_WORLD_SIZE` (and the rendezvous variables), and
`init_world` joins the process group. Without them the world is one process and every
collective is a no-op, so callers never branch on "distributed or not".

Backend: NCCL when the stage runs on CUDA, gloo on CPU. Each rank on a GPU machine uses
`cuda:LOCAL_RANK`; on CPU each rank takes its share of the machine's cores.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

# extraction and training can keep one rank busy for hours before the next collective
TIMEOUT = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist
            dist.barrier()

    def broadcast(self, obj=None):
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def device(self, name: str) -> str:
        """The device this rank uses for a configured `device` (`auto`, `cpu`, `cuda`, `cuda:N`)."""
        if self.distributed and name in ("auto", "cuda"):
            import torch
            if torch.cuda.is_available():
                return f"cuda:{self.local_rank}"
            return "cpu" if name == "auto" else name
        return name


def from_env(environ=os.environ) -> World:
    """The world torchrun describes in the environment (one process when it says nothing)."""
    size = int(environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(rank=int(environ.get("RANK", "0")), size=size,
                 local_rank=int(environ.get("LOCAL_RANK", "0")),
                 local_size=int(environ.get("LOCAL_WORLD_SIZE", str(size))))


def init_world(device: str = "auto") -> World:
    """Join torchrun's process group (once per process); returns the world either way.

    On CPU each rank gets `cpu_count // LOCAL_WORLD_SIZE` intra-op threads (at least one),
    so N ranks on one machine do not oversubscribe its cores.
    """
    world = from_env()
    if not world.distributed:
        return world
    import torch
    import torch.distributed as dist

    from .errors import StageError
    if device.startswith("cuda:"):
        raise StageError(f"device {device} under torchrun would put every rank on that one GPU; use device cuda "
                         f"(or auto): each rank takes cuda:LOCAL_RANK")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda and world.local_size > torch.cuda.device_count():
        raise StageError(f"torchrun started {world.local_size} processes on this machine, which has "
                         f"{torch.cuda.device_count()} GPU(s): at most one rank per GPU (--nproc_per_node="
                         f"{torch.cuda.device_count()}), or device cpu")
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=TIMEOUT)
    if not use_cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.local_size))
    return world


def shutdown(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()
