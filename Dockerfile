# syntax=docker/dockerfile:1
# kube-reranker images from one multi-stage build; the tag is the chart's appVersion:
#   docker build --target server     -t kube-reranker/reranker-server:0.1.0 .
#   docker build --target server-gpu -t kube-reranker/reranker-server-gpu:0.1.0 .
#   docker build --target operator   -t kube-reranker/reranker-operator:0.1.0 .
#   docker build --target export     -t kube-reranker/reranker-export:0.1.0 .
# Each target installs one requirement set, docker/requirements-<target>.txt; tests/e2e/test_images.py
# installs the same set into a fresh venv and imports the entrypoint, so a broken recipe fails the tests
# even where no container engine runs. Base images are pinned by tag, not digest: digests cannot be
# resolved offline where this file is written; add @sha256 pins where the build has registry access.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---- Python base: interpreter, the non-root user every runtime image runs as, the model cache path.
FROM ${PYTHON_IMAGE} AS python-base
ARG APP_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid "${APP_UID}" app \
 && useradd --system --uid "${APP_UID}" --gid app --home-dir /cache --no-create-home \
      --shell /usr/sbin/nologin app \
 && install -d -o app -g app -m 0775 /cache

# ---- Build: sources and pip; each *-venv stage fills /opt/venv with one requirement set.
FROM python-base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/ docker/
COPY server/ server/
COPY operator/ operator/

FROM build AS operator-venv
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r docker/requirements-operator.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM build AS server-venv
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r docker/requirements-server.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM build AS export-venv
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r docker/requirements-export-torch.txt \
 && /opt/venv/bin/pip install -r docker/requirements-export.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- Runtime base: no installer, no compiler; just the interpreter and the user.
FROM python-base AS runtime-base
ARG VERSION=0.1.0
RUN python -m pip uninstall --yes pip setuptools wheel
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kube-reranker/kube-reranker" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kube-reranker"
ENV PATH=/opt/venv/bin:$PATH \
    RERANKER_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface
WORKDIR /cache

# ---- GPU base: CUDA 12 + cuDNN 9 runtime libraries (what onnxruntime-gpu links), the distribution's Python.
FROM ${CUDA_IMAGE} AS gpu-base
ARG APP_UID=10001
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid "${APP_UID}" app \
 && useradd --system --uid "${APP_UID}" --gid app --home-dir /cache --no-create-home \
      --shell /usr/sbin/nologin app \
 && install -d -o app -g app -m 0775 /cache

FROM gpu-base AS server-gpu-venv
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/ docker/
COPY server/ server/
COPY operator/ operator/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -r docker/requirements-server-gpu.txt \
 && /opt/venv/bin/pip uninstall --yes pip

# ---- Targets.

# Model export for models that ship no ONNX graph: torch (CPU) lives only here, never in a serving image.
FROM runtime-base AS export
COPY --from=export-venv /opt/venv /opt/venv
LABEL org.opencontainers.image.title="reranker-export" \
      org.opencontainers.image.description="Exports and int8-quantizes cross-encoders to ONNX into /cache."
VOLUME ["/cache"]
USER 10001:10001
ENTRYPOINT ["reranker-server"]
CMD ["export", "--help"]

# The GPU server: ONNX Runtime's CUDA execution provider; readiness fails loudly where CUDA is missing.
FROM gpu-base AS server-gpu
ARG VERSION=0.1.0
COPY --from=server-gpu-venv /opt/venv /opt/venv
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kube-reranker/kube-reranker" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kube-reranker" \
      org.opencontainers.image.title="reranker-server-gpu" \
      org.opencontainers.image.description="Cross-encoder reranking server on ONNX Runtime CUDA."
ENV PATH=/opt/venv/bin:$PATH \
    RERANKER_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface \
    RERANKER_BACKEND=gpu
WORKDIR /cache
VOLUME ["/cache"]
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["reranker-server"]
CMD ["serve"]

# The operator: kopf and the Kubernetes client only.
FROM runtime-base AS operator
COPY --from=operator-venv /opt/venv /opt/venv
LABEL org.opencontainers.image.title="reranker-operator" \
      org.opencontainers.image.description="kopf operator that turns RerankerDeployments into autoscaled servers."
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["reranker-operator"]
CMD ["run"]

# The CPU server (the default target): ONNX Runtime CPU, tokenizers, FastAPI; no torch.
FROM runtime-base AS server
COPY --from=server-venv /opt/venv /opt/venv
LABEL org.opencontainers.image.title="reranker-server" \
      org.opencontainers.image.description="Cross-encoder reranking server on ONNX Runtime CPU, warmed up before ready."
# Two malloc arenas: glibc's default (8 per core) kept a k=100 x 512 server at 1.2 GB RSS instead of 0.83 GB.
ENV MALLOC_ARENA_MAX=2
VOLUME ["/cache"]
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["reranker-server"]
CMD ["serve"]
