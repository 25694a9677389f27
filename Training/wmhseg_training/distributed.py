"""Single process by default; DistributedDataParallel when started by ``torchrun``.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; each process then drives one GPU (NCCL) or, without
GPUs, a share of the CPU (gloo). Rank 0 alone builds the cache, validates, logs and writes
checkpoints; the others wait at barriers, so files are never written twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from WMHSegmenterLib.engine.device import resolve_device
from WMHSegmenterLib.engine.errors import InputError

#: How long ranks wait at a barrier while rank 0 validates whole volumes (the default is 10-30 min).
VALIDATION_WAIT = timedelta(hours=3)


@dataclass(frozen=True)
class Context:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(requested_device: str = "auto") -> Context:
    """This process's rank and device; joins the process group when torchrun launched several."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context(0, 0, 1, torch.device(resolve_device(requested_device)))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    kind = resolve_device(requested_device)
    if kind == "mps":
        raise InputError("several processes on Apple GPUs are not supported; use --device cpu")
    if kind == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo", timeout=VALIDATION_WAIT)
    return Context(rank, local_rank, world_size, device)


def barrier(context: Context) -> None:
    if context.distributed:
        if context.device.type == "cuda":
            dist.barrier(device_ids=[context.local_rank])
        else:
            dist.barrier()


def mean_over_ranks(value: float, context: Context) -> float:
    """The mean of a number over all processes (the epoch's training loss)."""
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


def stop(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
