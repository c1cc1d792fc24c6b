"""PyTorch DistributedDataParallel training that gpupool can preempt without losing work.

On a gpupool worker pod (see gpujob.yaml) this script:

- resumes from `GPUPOOL_RESUME_FROM` (model, optimizer and step) when gpupool
  re-admits the job after a preemption, a node failure or a resize;
- saves a checkpoint every `--checkpoint-every` steps and reports it, so even a node
  failure loses at most that much work;
- on SIGTERM (gpupool's `signal` hook: grace period = the hook timeout) stops every
  rank at the same step, saves, writes the location to the termination message and
  exits; in `httpPost` mode it also serves the endpoint gpupool POSTs to.

gpupool starts one pod per worker and gives it WORLD_SIZE (pods), RANK (this pod),
MASTER_ADDR and MASTER_PORT. An elastic job that grows or shrinks is checkpointed and
started again at its new size (a new incarnation: new WORLD_SIZE, RANK and
GPUPOOL_RESUME_FROM), so this static rendezvous is right for it too. With several GPUs per pod, this script is its own
launcher: it starts one process per GPU and forwards SIGTERM to them. (torchrun
would give its workers only 30 s after a SIGTERM, less than a checkpoint may need.)

Try it without a cluster, on CPU: two "pods" of two processes each (with the
gpupool package importable, e.g. PYTHONPATH=<repo>/operator):

    export MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 WORLD_SIZE=2 CHECKPOINT_DIR=/tmp/ckpt
    GPUPOOL_TERMINATION_LOG=/tmp/log0 RANK=0 python train.py --nproc-per-node 2 &
    GPUPOOL_TERMINATION_LOG=/tmp/log1 RANK=1 python train.py --nproc-per-node 2 &
    sleep 30; kill -TERM %1 %2; wait
    cat /tmp/log0     # {"checkpoint": "/tmp/ckpt/local/step-00000802.pt"}

Start both again with GPUPOOL_RESUME_FROM set to that location: they go on from
that step.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import signal
import sys
import time
from types import FrameType

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gpupool.workload import (
    Checkpointer,
    checkpoint_endpoint,
    checkpoint_timeout,
    restart_count,
    resume_from,
    serve_checkpoint_endpoint,
    worker,
)

FEATURES = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument(
        "--checkpoint-dir",
        default=os.environ.get("CHECKPOINT_DIR", "/checkpoints"),
        help="shared storage every pod mounts (a ReadWriteMany volume)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--step-seconds", type=float, default=0.0, help="extra time per step")
    parser.add_argument(
        "--checkpoint-host",
        default="0.0.0.0",
        help="where the httpPost checkpoint endpoint listens (gpupool calls the pod IP)",
    )
    parser.add_argument(
        "--nproc-per-node",
        type=int,
        default=torch.cuda.device_count() or 1,
        help="processes in this pod: one per GPU",
    )
    return parser.parse_args(argv)


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1)
    )


def batch(step: int, rank: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Synthetic regression data, a function of (step, rank): a resumed run sees the same."""
    generator = torch.Generator().manual_seed(step * 100_003 + rank)
    inputs = torch.randn(size, FEATURES, generator=generator)
    weights = torch.linspace(-1, 1, FEATURES, dtype=inputs.dtype)
    targets = (inputs @ weights).unsqueeze(1) + 0.01 * torch.randn(size, 1, generator=generator)
    return inputs.to(device), targets.to(device)


def save_checkpoint(
    path: str,
    model: DistributedDataParallel,
    optimizer: torch.optim.Optimizer,
    step: int,
    rank: int,
) -> str:
    """Rank 0 writes (atomically: a cut-off save never replaces a good one); all wait."""
    if rank == 0:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.partial"
        torch.save(
            {
                "model": model.module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
            },
            partial,
        )
        os.replace(partial, path)
    dist.barrier()
    return path


def train(local_rank: int, args: argparse.Namespace) -> None:
    """One process: one GPU (or a CPU share), rank = pod rank × processes + local rank."""
    place = worker()  # raises, naming the variable, if gpupool's environment is wrong
    pods, pod_rank = place.world_size, place.rank
    rank = pod_rank * args.nproc_per_node + local_rank
    world = pods * args.nproc_per_node
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local_rank))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")

    model = make_model().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    start = 0
    location = resume_from()
    if location:
        state = torch.load(location, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    if rank == 0:
        print(
            f"world {world}, restart {restart_count()}, "
            f"{'resuming from ' + location if location else 'fresh start'} at step {start}",
            flush=True,
        )

    run = os.environ.get("GPUPOOL_JOB", "local")
    step = start

    def save() -> str:
        path = os.path.join(args.checkpoint_dir, run, f"step-{step:08d}.pt")
        return save_checkpoint(path, ddp, optimizer, step, rank)

    # Deferred: the save runs at a step boundary that every rank agrees on. Only one
    # process per pod writes the pod's termination message.
    checkpointer = Checkpointer(
        save,
        defer=True,
        termination_log=None if local_rank == 0 else os.devnull,
        log=local_rank == 0,
    ).install()
    endpoint = checkpoint_endpoint()
    if endpoint is not None and local_rank == 0:
        port, path = endpoint
        serve_checkpoint_endpoint(
            port,
            path,
            functools.partial(checkpointer.request, timeout=checkpoint_timeout()),
            host=args.checkpoint_host,
        )

    loss_fn = nn.MSELoss()
    while step < args.steps:
        inputs, targets = batch(step, rank, args.batch_size, device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(ddp(inputs), targets)
        loss.backward()
        optimizer.step()
        step += 1
        if args.step_seconds:
            time.sleep(args.step_seconds)
        # Every rank learns whether any rank was told to stop or to save, so they all
        # act at this same step; a rank acting alone would hang the others.
        flags = torch.tensor(
            [checkpointer.stop_requested, checkpointer.save_requested], device=device
        ).int()
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        if flags[0]:
            if rank == 0:
                print(f"SIGTERM: checkpoint at step {step}", flush=True)
            checkpointer.checkpoint_and_exit()
        if flags[1] or step % args.checkpoint_every == 0:
            saved = checkpointer.checkpoint()
            if rank == 0:
                print(f"step {step} loss {loss.item():.5f} checkpoint {saved}", flush=True)
    dist.destroy_process_group()


def launch(args: argparse.Namespace) -> int:
    """Start one process per GPU; forward SIGTERM; exit as they did."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=train, args=(local_rank, args), name=f"rank-{local_rank}")
        for local_rank in range(args.nproc_per_node)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, frame: FrameType | None) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    for process in processes:
        process.join()
    # A process killed by signal N reports -N; a shell would say 128 + N.
    codes = [code if code >= 0 else 128 - code for code in (p.exitcode or 0 for p in processes)]
    # Any failure or interruption (143: stopped after a checkpoint) wins over 0, so a
    # preempted pod never reads as a completed one.
    return max(codes)


def main() -> int:
    args = parse_args()
    if args.nproc_per_node == 1:
        train(0, args)
        return 0
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
