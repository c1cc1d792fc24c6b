"""gpupool: a Kubernetes GPU scheduler extension that shares one pool of GPUs across teams."""

__version__ = "0.1.0"
