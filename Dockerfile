# syntax=docker/dockerfile:1
# kube-reranker images from one multi-stage build; the tag is the chart's appVersion:
#   docker build --target server     -t kube-reranker/reranker-server:0.1.0 .
#   docker build --target server-gpu -t kube-reranker/reranker-server-gpu:0.1.0 .
#   docker build --target operator   -t kube-reranker/reranker-operator:0.1.0 .
#   docker build --target export     -t kube-reranker/reranker-export:0.1.0 .
# Each target installs one requirement set, docker/requirements-<target>.txt. `make images`
# (scripts/build-images.sh) builds server, operator and export with podman from a debootstrapped
# Debian base, and tests/images runs them; tests/e2e/test_images.py also installs each set into a
# fresh venv, so a broken recipe fails the tests even where no container engine runs. The base images
# default to tags (no registry is reachable where this file is written, so no digest could be read);
# both ARGs take a digest, and a pinned build passes one, e.g.
#   --build-arg DEBIAN_IMAGE=debian:12.15-slim@sha256:<digest>
# `make images` does so with its debootstrapped base (tests/images checks the images sit on it).
#
# Why Debian's Python instead of the official python:3.11-slim image: that image is Debian slim plus
# a CPython built from source into /usr/local, which nothing but a registry pull can reproduce. Debian
# slim with the distribution's python3 (3.11 on bookworm) is what `debootstrap --variant=minbase`
# rebuilds almost exactly, so the images the tests build and run are the images users run; Debian
# also ships that interpreter's security fixes through apt, like the rest of the base.

ARG DEBIAN_IMAGE=debian:12.15-slim

# ---- Python base: the distribution's interpreter (no pip), the non-root user, the model cache path.
FROM ${DEBIAN_IMAGE} AS python-base
ARG APP_UID=10001
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# ca-certificates: the hub downloads and HF_TOKEN requests go over TLS.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid "${APP_UID}" app \
 && useradd --system --uid "${APP_UID}" --gid app --home-dir /cache --no-create-home \
      --shell /usr/sbin/nologin app \
 && install -d -o app -g app -m 0775 /cache

# ---- Build: /opt/venv with a current pip, and the sources; each *-venv stage fills /opt/venv with one
# requirement set. Debian's ensurepip brings pip 23.0, whose build-isolation subprocess drops a
# configured CA bundle. PIP_CONFIG_FILE is for build hosts whose package index needs its own pip
# configuration (a CA bundle, local wheels): scripts/build-images.sh passes one on a read-only mount, so
# neither the file nor what it names ever lands in a runtime image. Unset, pip uses its defaults.
FROM python-base AS build
ARG PIP_CONFIG_FILE
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install pip==25.3
WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/ docker/
COPY server/ server/
COPY operator/ operator/

FROM build AS operator-venv
ARG PIP_CONFIG_FILE
RUN /opt/venv/bin/pip install -r docker/requirements-operator.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM build AS server-venv
ARG PIP_CONFIG_FILE
RUN /opt/venv/bin/pip install -r docker/requirements-server.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# torch comes from PyTorch's CPU-only index: the default wheel pulls several GB of CUDA libraries that
# exporting a cross-encoder never uses. An empty TORCH_INDEX_URL leaves the index to pip's configuration
# (scripts/build-images.sh does that where a CPU wheel lies in the host's local wheels).
FROM build AS export-venv
ARG PIP_CONFIG_FILE
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN /opt/venv/bin/pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
      -r docker/requirements-export-torch.txt \
 && /opt/venv/bin/pip install -r docker/requirements-export.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- Runtime base: no installer, no compiler; just the interpreter and the user.
FROM python-base AS runtime-base
ARG VERSION=0.1.0
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kube-reranker/kube-reranker" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kube-reranker"
ENV PATH=/opt/venv/bin:$PATH \
    RERANKER_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface
WORKDIR /cache

# GPU: no CUDA base image. onnxruntime-gpu's [cuda,cudnn] extras install the CUDA runtime, cuBLAS, cuFFT,
# cuRAND and cuDNN wheels of the CUDA major its provider was built against (13 for 1.31), and the server
# preloads them (onnxruntime.preload_dlls) before it opens a CUDA session; only the driver (libcuda.so.1)
# comes from the node, mounted by the NVIDIA container toolkit. A CUDA base pinned apart from the wheel
# drifted once (CUDA 12 base, CUDA 13 provider: GPU pods never became ready); here both come from one
# resolution, and tests/e2e/test_images.py checks every library the provider links is in the set.
# CUDA 13 needs NVIDIA driver 580 or newer on the node.
FROM build AS server-gpu-venv
ARG PIP_CONFIG_FILE
RUN /opt/venv/bin/pip install -r docker/requirements-server-gpu.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

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
# NVIDIA_DRIVER_CAPABILITIES asks the container toolkit for the compute driver libraries (its default,
# utility, mounts only nvidia-smi's); which GPUs a pod sees stays the device plugin's choice.
FROM runtime-base AS server-gpu
COPY --from=server-gpu-venv /opt/venv /opt/venv
LABEL org.opencontainers.image.title="reranker-server-gpu" \
      org.opencontainers.image.description="Cross-encoder reranking server on ONNX Runtime CUDA."
ENV RERANKER_BACKEND=gpu \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MALLOC_ARENA_MAX=2
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
