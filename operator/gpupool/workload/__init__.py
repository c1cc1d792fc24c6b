"""The helper training scripts import: resume, checkpoint on SIGTERM, report checkpoints.

Standard library only (it runs inside training containers next to PyTorch, not next
to the operator); copy this directory into an image or install the package with
`pip install --no-deps gpupool`.

    from gpupool.workload import Checkpointer, resume_from

    state = load(resume_from()) if resume_from() else fresh()
    checkpointer = Checkpointer(lambda: save(state)).install()   # SIGTERM: save, exit
    for step in ...:
        train_step()
        if step % 500 == 0:
            checkpointer.report(save(state))   # a node failure resumes from here

gpupool reads the location from the container's termination message (mode `signal`)
or from the reply of `serve_checkpoint_endpoint` (mode `httpPost`), records it in the
GPUJob's `status.lastCheckpoint`, and passes it back as `GPUPOOL_RESUME_FROM`.
"""

from gpupool.workload.checkpointer import Checkpointer, report, termination_log_path
from gpupool.workload.endpoint import CheckpointEndpoint, serve_checkpoint_endpoint
from gpupool.workload.environment import (
    checkpoint_endpoint,
    checkpoint_mode,
    checkpoint_timeout,
    restart_count,
    resume_from,
)

__all__ = [
    "CheckpointEndpoint",
    "Checkpointer",
    "checkpoint_endpoint",
    "checkpoint_mode",
    "checkpoint_timeout",
    "report",
    "restart_count",
    "resume_from",
    "serve_checkpoint_endpoint",
    "termination_log_path",
]
