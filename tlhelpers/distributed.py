"""The book's fine-tuning recipe on one process or many: plain Python, ``torchrun``, ``accelerate launch``.

One script, three ways to run it, no change to the code::

    python -m tlhelpers.distributed hymenoptera --epochs 3                  # one process
    torchrun --nproc_per_node=4 -m tlhelpers.distributed hymenoptera        # 4 processes (DDP)
    accelerate launch --num_processes=2 -m tlhelpers.distributed hymenoptera  # GPUs, via accelerate

``torchrun`` and ``accelerate launch`` start one process per worker and tell
each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in environment variables;
:func:`setup` reads them. Each process holds a full copy of the model, reads
its own share of every batch (:class:`~torch.utils.data.DistributedSampler`)
and :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients
across processes before every step, so all copies stay identical.

The recipe is Chapter 5's: a pretrained EfficientNet-Lite0 with a new head,
the top blocks trained with a small learning rate and the head with a larger
one, BatchNorm statistics frozen. Dropout is off as well, which (with frozen
statistics) makes ``N`` processes with ``batch_size / N`` images each compute
exactly the step one process computes with ``batch_size`` images — the tests
check that, on two CPU processes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from . import checkpoint, data, models, settings


def setup() -> tuple[int, int, torch.device]:
    """Join the process group started by ``torchrun``/``accelerate launch``; ``(rank, world_size, device)``.

    Without those launchers (no ``WORLD_SIZE`` above 1 in the environment) it
    returns ``(0, 1, settings.get_device())`` and starts nothing. Processes
    use the GPU of their ``LOCAL_RANK`` with the NCCL backend when there is
    one, else the CPU with Gloo.

    Examples
    --------
    >>> from tlhelpers.distributed import setup
    >>> rank, world, device = setup()   # a plain Python process
    >>> rank, world
    (0, 1)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, settings.get_device()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return rank, world, device


def fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order: equal fingerprints mean identical weights.

    Examples
    --------
    >>> import torch
    >>> from tlhelpers.distributed import fingerprint
    >>> _ = torch.manual_seed(0); a = torch.nn.Linear(2, 2)
    >>> _ = torch.manual_seed(0); b = torch.nn.Linear(2, 2)
    >>> fingerprint(a) == fingerprint(b)
    True
    """
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finetune(dataset: str, *, model_name: str = "efficientnet_lite0", trainable_blocks: int = 3,
             lr: float = 1e-4, head_lr: float = 1e-3, epochs: int = 1, batch_size: int = 32,
             input_size: int = 160, max_steps: int | None = None, seed: int = 0,
             out: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Fine-tune ``model_name`` on ``dataset``'s train split, on this process and any others launched with it.

    ``batch_size`` is the global batch: each of ``N`` processes reads
    ``batch_size / N`` images per step. Rank 0 saves the model to
    ``out/model.pt`` (:func:`tlhelpers.checkpoint.save_model`). Returns
    ``world_size``, ``steps``, the last step's ``loss`` (averaged over the
    processes) and ``ranks_agree``: whether every process ended with the same
    weights (:func:`fingerprint`).

    Raises
    ------
    ValueError
        ``batch_size`` not divisible by the number of processes.
    """
    rank, world, device = setup()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes; "
                         f"choose a multiple of {world}")
    settings.seed_everything(seed)
    train_set = data.load_dataset(dataset, "train",
                                  transform=models.transforms(model_name, input_size=input_size))
    model = models.create_model(model_name, num_classes=len(train_set.classes), seed=seed,
                                progress=progress and rank == 0)
    models.freeze(model, trainable_blocks=trainable_blocks)
    optimizer = torch.optim.AdamW(models.param_groups(model, lr, head_lr=head_lr))
    model.to(device).eval()   # BatchNorm statistics frozen and dropout off: see the module docstring
    net = DistributedDataParallel(model) if world > 1 else model
    # every process shuffles with the same seed and takes every N-th image of the same order
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(train_set, batch_size=batch_size // world, sampler=sampler, drop_last=True)
    steps, loss = 0, torch.zeros(())
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for images, labels in loader:
            if max_steps is not None and steps >= max_steps:
                break
            loss = F.cross_entropy(net(images.to(device)), labels.to(device))
            optimizer.zero_grad()
            loss.backward()   # DDP averages the gradients across processes here
            optimizer.step()
            steps += 1
        if progress and rank == 0:
            print(f"epoch {epoch + 1} of {epochs}: {steps} steps so far", flush=True)
    mine = fingerprint(model)
    loss = loss.detach().to(device)
    if world > 1:
        prints: list = [None] * world
        dist.all_gather_object(prints, mine)
        dist.all_reduce(loss)
        loss /= world
    else:
        prints = [mine]
    if out is not None and rank == 0:
        checkpoint.save_model(model.cpu(), Path(out) / "model.pt", classes=list(train_set.classes),
                              preprocessing=models.preprocessing(model_name), name=model_name)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"rank": rank, "world_size": world, "steps": steps, "loss": float(loss),
            "ranks_agree": len(set(prints)) == 1, "fingerprint": mine}


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line for :func:`finetune` (``python -m tlhelpers.distributed --help``)."""
    p = argparse.ArgumentParser(prog="python -m tlhelpers.distributed", description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="a registered dataset with a train split, e.g. hymenoptera")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--trainable-blocks", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32, help="global batch, split across processes")
    p.add_argument("--input-size", type=int, default=160)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for model.pt (written by rank 0)")
    a = p.parse_args(argv)
    result = finetune(a.dataset, model_name=a.model, trainable_blocks=a.trainable_blocks, lr=a.lr,
                      head_lr=a.head_lr, epochs=a.epochs, batch_size=a.batch_size, input_size=a.input_size,
                      max_steps=a.max_steps, seed=a.seed, out=a.out)
    if result["rank"] == 0:
        print(f"world size {result['world_size']}, {result['steps']} steps, loss {result['loss']:.4f}, "
              f"all ranks hold identical weights: {result['ranks_agree']}", flush=True)
    return result


if __name__ == "__main__":
    main()
