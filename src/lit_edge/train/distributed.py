"""torch.distributed helpers: set up from torchrun's environment, keep ranks in step, log on rank 0.

Launch is always torchrun's job (never a home-made launcher)::

    python -m lit_edge.train run train/smoke.py                                   # one process
    torchrun --standalone --nproc_per_node=2 -m lit_edge.train run train/smoke.py  # one node
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=$HEAD:29500 --rdzv_id=$JOB -m lit_edge.train run train/inat2021_vitl16.py

``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` come from torchrun; without them the run is single-process.
Gradients are averaged with one flat all-reduce per step rather than DDP: the trainer calls
``encode_text`` (not ``forward``), which DDP's hooks would not see, and the loss already gathers
features with gradient.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    if rank != 0:  # rank-0-only logging: other ranks report warnings and errors only
        logging.getLogger("lit_edge").setLevel(logging.WARNING)
    return DistContext(rank, world, local_rank, dev)


def teardown(ok: bool = True) -> None:
    """Leave the process group. After a clean run the ranks leave together: a gloo rank that tears
    down while its peer is still in a collective makes the peer abort ("terminate called without an
    active exception"). After an error there is no barrier, which could wait on a dead peer."""
    if dist.is_initialized():
        try:
            if ok:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights (random-init towers differ per process otherwise)."""
    if not dist.is_initialized():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Mean of each gradient over ranks, with one flat all-reduce."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def mean_scalar(value: float, device: torch.device) -> float:
    """The mean of a Python float over ranks (for logging the global loss)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def min_int(value: int, device: torch.device) -> int:
    """The minimum of an int over ranks (equal batch sizes after dropping unreadable images)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())
