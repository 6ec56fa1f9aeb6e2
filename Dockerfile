# syntax=docker/dockerfile:1
# One image for every meshscope role: the command picks it (docs/deployment.md).
#
#   docker build -t meshscope .                                   # scripted model only
#   docker build -t meshscope:local --build-arg LOCAL_MODEL=1 .   # + the `local` model (llama.cpp, ~15 min)
#
#   docker run meshscope serve agents --agents analyst            # an agent server   (gRPC, 50051)
#   docker run meshscope serve orchestrator -f /app/mesh.yaml     # the orchestrator  (gRPC, 50050)
#   docker run meshscope serve bridge                             # the A2A bridge    (HTTP, 8080)
#
# Every server binds 0.0.0.0 in the image (MESHSCOPE_*HOST below) and runs as an unprivileged user.
# Configuration is by environment only (docs/configuration.md).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG LOCAL_MODEL=0
# llama-cpp-python (the `local` extra) compiles from source: a C++ toolchain and cmake. A portable
# build (no -march=native): the image runs on CPUs other than the builder's (DESIGN.md §12).
RUN if [ "$LOCAL_MODEL" = 1 ]; then \
      apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/meshscope
ENV PATH=/opt/meshscope/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos protos
COPY services services
COPY orchestrator orchestrator
COPY discovery discovery
COPY meshscope_cli meshscope_cli
RUN --mount=type=cache,target=/root/.cache/pip \
    extras=uvloop; if [ "$LOCAL_MODEL" = 1 ]; then extras=uvloop,local; fi; \
    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "/src[$extras]"

FROM python:${PYTHON_VERSION}-slim
ARG LOCAL_MODEL=0
# llama.cpp's libraries link GNU OpenMP (libgomp.so.1), which the slim image does not have.
RUN if [ "$LOCAL_MODEL" = 1 ]; then \
      apt-get update && apt-get install -y --no-install-recommends libgomp1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin meshscope \
    && mkdir -p /app/state && chown meshscope /app/state
COPY --from=build /opt/meshscope /opt/meshscope
COPY mesh.yaml /app/mesh.yaml
ENV PATH=/opt/meshscope/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MESHSCOPE_HOST=0.0.0.0 \
    MESHSCOPE_ORCHESTRATOR_HOST=0.0.0.0 \
    MESHSCOPE_BRIDGE_HOST=0.0.0.0 \
    MESHSCOPE_MESH_FILE=/app/mesh.yaml \
    MESHSCOPE_STATE_DIR=/app/state \
    MESHSCOPE_BRIDGE_DATABASE_URL=sqlite+aiosqlite:////app/state/bridge.db
WORKDIR /app
USER 10001
EXPOSE 50050 50051 8080
# The role's own health: MESHSCOPE_HEALTH_TARGET is host:port of the gRPC health service (agents:
# 127.0.0.1:50051, the default; orchestrator: 127.0.0.1:50050) or the bridge's http://127.0.0.1:8080/healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD meshscope health "${MESHSCOPE_HEALTH_TARGET:-127.0.0.1:50051}"
# SIGTERM starts each server's graceful drain; compose and Kubernetes wait their grace period for it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["meshscope"]
CMD ["serve", "agents", "--agents", "analyst"]
