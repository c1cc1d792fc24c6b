# syntax=docker/dockerfile:1.7
# One image for the operator and the node agent (different arguments):
#   operator: gpupool operator
#   agent:    gpupool-agent (the DaemonSet's command; also `gpupool agent`)
# Stage 1 builds a wheel; stage 2 installs the exact dependencies of requirements.lock
# (hashes checked; `make lock` regenerates it), then the wheel alone, into a slim image
# that runs as non-root and works with a read-only root filesystem (nothing is written
# outside /tmp).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /dist

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="gpupool" \
      org.opencontainers.image.description="Kubernetes GPU scheduler extension: operator and node agent" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/gpupool/gpupool"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /dist/*.whl /tmp/wheels/
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels /tmp/requirements.lock \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin gpupool
USER 65532:65532
WORKDIR /tmp
EXPOSE 9400 8080 9443
ENTRYPOINT ["gpupool"]
CMD ["operator"]
