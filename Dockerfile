# TradeTrust chat gateway image.
#
#   make docker          # builds the wheelhouse on the host, then this file (python:3.11-slim)
#   make image-check     # CI proof: same file on a local debootstrap'd bookworm base, then runs it
#
# The image installs only from wheels built on the host (`wheelhouse/`, see
# scripts/build-image.sh): the build never needs the package index, which also makes it work
# where the build sandbox has no network. Any Debian-like base with Python 3.11 and `venv` fits
# (the host builds cp311 wheels); override it with --build-arg BASE_IMAGE=...

ARG BASE_IMAGE=python:3.11-slim

# --- build: a self-contained venv with the gateway and its dependencies -----------------------
FROM ${BASE_IMAGE} AS build
ARG WHEELHOUSE=wheelhouse
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY ${WHEELHOUSE}/ /tmp/wheelhouse/
# pip and setuptools are only needed to install; dropping them keeps them out of the runtime.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheelhouse tradetrust-chat-gateway \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/pip uninstall -y -q setuptools pip \
 && /opt/venv/bin/python -c "import gateway.app, gateway.healthcheck, tradetrust.chat.v1"

# --- runtime: the base interpreter + the venv, as a non-root user -----------------------------
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --home-dir /var/lib/chat-gateway \
        --no-create-home --shell /usr/sbin/nologin chat \
 && install -d -o chat -g chat -m 0750 /var/lib/chat-gateway
COPY --from=build /opt/venv /opt/venv
# Bind every interface inside the container (the dev defaults are loopback-only). SQLite lives
# in the data dir; mount a volume there, or point CHAT_GATEWAY_DATABASE_URL at PostgreSQL.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHAT_GATEWAY_GRPC_ADDR=0.0.0.0:50051 \
    CHAT_GATEWAY_HTTP_ADDR=0.0.0.0:8080 \
    CHAT_GATEWAY_DATABASE_URL=sqlite:////var/lib/chat-gateway/chat-gateway.db
WORKDIR /var/lib/chat-gateway
VOLUME ["/var/lib/chat-gateway"]
USER 10001:10001
EXPOSE 50051 8080
# grpc.health.v1 Check on $CHAT_GATEWAY_GRPC_ADDR (0.0.0.0 is probed on 127.0.0.1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "gateway.healthcheck"]
# SIGTERM drains gracefully (health flips to NOT_SERVING first).
STOPSIGNAL SIGTERM
# Every connection costs a file descriptor: run with a generous limit, e.g.
#   docker run --ulimit nofile=65536:65536 ...   (systemd: LimitNOFILE=65536)
# The gateway raises its soft limit to the hard one at start and keeps at most half of it
# for HTTP bridge connections (CHAT_GATEWAY_HTTP_MAX_CONNECTIONS), the rest for gRPC.
ENTRYPOINT ["python", "-m", "gateway"]
CMD ["serve"]
