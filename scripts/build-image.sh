#!/usr/bin/env bash
# Build the gateway's container image, and prove that it builds and runs.
#
#   scripts/build-image.sh build   # `make docker`: build with docker, podman or buildah (whichever
#                                  # works) on the normal base (python:3.11-slim by default)
#   scripts/build-image.sh check   # `make image-check`, the CI proof; needs root, buildah and
#                                  # debootstrap, and no container engine or registry:
#       1. wheelhouse: `pip wheel` the gateway, its client and all dependencies on the host;
#       2. base: a Debian bookworm rootfs with python3 + python3-venv made by debootstrap and
#          imported as a local image (cached: the rootfs tarball under $CACHE_DIR, the image
#          in buildah's store);
#       3. build: the unmodified Dockerfile with `buildah bud --isolation chroot` and
#          --build-arg BASE_IMAGE=<local base>;
#       4. run: the image's own ENTRYPOINT + CMD (`python -m gateway serve`) with a
#          production-like config on free 127.0.0.1 ports, as the image's non-root user;
#       5. health: the image's own HEALTHCHECK command must answer SERVING; then an
#          authenticated IssueToken from the host, and the SQLite file must be in the data dir;
#       6. stop with SIGTERM (graceful drain) and remove the container.
#
# Environment: IMAGE (tag for `build`, default tradetrust/chat-gateway:latest), BASE_IMAGE
# (base for `build`), CHAT_GATEWAY_IMAGE_CACHE (default /var/cache/chat-gateway-image),
# DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-}
IMAGE=${IMAGE:-tradetrust/chat-gateway:latest}
CHECK_IMAGE=localhost/tradetrust-chat-gateway:image-check
CACHE_DIR=${CHAT_GATEWAY_IMAGE_CACHE:-/var/cache/chat-gateway-image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
# Bump BASE_REV when the way the base is made changes; it keys both caches.
BASE_REV=2
BASE_KEY=$(printf '%s %s %s %s' "$SUITE" "$BASE_PACKAGES" "$MIRROR" "$BASE_REV" |
  sha256sum | cut -c1-12)
BASE_TAG=localhost/chat-gateway-base:$SUITE-$BASE_KEY
BASE_TARBALL=$CACHE_DIR/$SUITE-$BASE_KEY-rootfs.tar
# Every image built on the local base inherits this label: how cleanup finds only our images.
BASE_LABEL=org.tradetrust.chat-gateway.image-check-base
PY=${PY:-.venv/bin/python}

STARTED=$(date +%s.%N)
log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
  printf '[image] FAILED: %s\n' "$*" >&2
  exit 1
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
# step NAME CMD...: run one step and print how long it took.
step() {
  local name=$1 t0
  shift
  t0=$(date +%s.%N)
  log "step: $name"
  "$@"
  log "done: $name in $(since "$t0")"
}

wheelhouse() {
  [ -x "$PY" ] || die "$PY not found: run \`make venv\` first"
  # From scratch every time, so no stale version lingers (dependency wheels come from pip's
  # cache, so this costs seconds).
  rm -rf wheelhouse
  mkdir -p wheelhouse
  "$PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir wheelhouse \
    ./clients/python . 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  # Pin the zip timestamps of our wheels (setuptools stamps "now"): unchanged sources then give
  # byte-identical wheels, and buildah reuses the cached layers instead of reinstalling.
  python3 - wheelhouse/tradetrust_chat_*.whl <<'PYEOF'
import sys, zipfile
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.external_attr, fixed.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
            dst.writestr(fixed, data)
PYEOF
  log "wheelhouse: $(find wheelhouse -name '*.whl' | wc -l) wheels, $(du -sh wheelhouse | cut -f1)"
}

# --- build: the normal base, whichever engine exists ------------------------------------------
build() {
  local args=(--build-arg "BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}" -t "$IMAGE" -f Dockerfile .)
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    log "docker build -> $IMAGE"
    docker build "${args[@]}"
  elif command -v podman >/dev/null; then
    log "podman build -> $IMAGE"
    podman build --format docker "${args[@]}"
  elif command -v buildah >/dev/null; then
    log "buildah bud -> $IMAGE"
    buildah bud --isolation "${BUILDAH_ISOLATION:-chroot}" --format docker --layers "${args[@]}"
  else
    die "no docker (with a running daemon), podman or buildah found"
  fi
}

# --- check: local debootstrap base, buildah, run, health check --------------------------------
base_image() {
  if buildah inspect --type image "$BASE_TAG" >/dev/null 2>&1; then
    log "base: $BASE_TAG (cached image)"
    return
  fi
  mkdir -p "$CACHE_DIR/debs"
  if [ -s "$BASE_TARBALL" ]; then
    log "base: importing cached rootfs $BASE_TARBALL"
  else
    local rootfs="$CACHE_DIR/rootfs.$$"
    rm -rf "$rootfs"
    log "base: debootstrap $SUITE (+$BASE_PACKAGES) from $MIRROR"
    timeout 900 debootstrap --variant=minbase --include="$BASE_PACKAGES" \
      --cache-dir="$CACHE_DIR/debs" "$SUITE" "$rootfs" "$MIRROR" \
      >"$CACHE_DIR/debootstrap.log" 2>&1 ||
      { tail -20 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    # What the official Debian slim images leave out too: package lists, docs, man pages.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
    tar --numeric-owner --xattrs -C "$rootfs" \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
      -cf "$BASE_TARBALL.tmp" .
    mv "$BASE_TARBALL.tmp" "$BASE_TARBALL"
    rm -rf "$rootfs"
  fi
  local ctr
  ctr=$(buildah from --quiet scratch)
  buildah add --quiet "$ctr" "$BASE_TARBALL" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash --label "$BASE_LABEL=$BASE_KEY" "$ctr"
  buildah commit --quiet --rm "$ctr" "$BASE_TAG" >/dev/null
  log "base: $BASE_TAG ($(image_size "$BASE_TAG"))"
}

image_size() { buildah images --format '{{.Size}}' "$1" | head -1; }

build_check_image() {
  local previous
  previous=$(buildah images -q --no-trunc "$CHECK_IMAGE" 2>/dev/null || true)
  timeout 900 buildah bud --isolation chroot --format docker --layers --pull=false \
    --build-arg "BASE_IMAGE=$BASE_TAG" -t "$CHECK_IMAGE" -f Dockerfile . ||
    die "buildah bud failed"
  log "image: $CHECK_IMAGE ($(image_size "$CHECK_IMAGE"))"
  # Keep the store from growing run after run: drop the image this tag pointed to before and
  # all but the newest untagged image built on our base (the build stage this build used).
  if [ -n "$previous" ] && [ "$previous" != "$(buildah images -q --no-trunc "$CHECK_IMAGE")" ]; then
    buildah rmi "$previous" >/dev/null 2>&1 || true
  fi
  buildah images -q --no-trunc --filter dangling=true --filter "label=$BASE_LABEL" |
    tail -n +2 | xargs -r buildah rmi >/dev/null 2>&1 || true
}

# Prints one image config field, one word per line (ENTRYPOINT, CMD, HEALTHCHECK test, USER).
image_field() {
  buildah inspect --type image "$CHECK_IMAGE" |
    python3 -c '
import json, sys
c = json.load(sys.stdin)["Docker"]["config"]
f = sys.argv[1]
v = c.get(f) or []
if f == "Healthcheck":
    v = (v or {}).get("Test") or []
    if not v or v[0] not in ("CMD", "CMD-SHELL"):
        sys.exit("image has no HEALTHCHECK")
    v = v[1:] if v[0] == "CMD" else ["/bin/sh", "-c", v[1]]
print("\n".join(v) if isinstance(v, list) else v)' "$1"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CTR=""
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$CTR" ]; then buildah rm "$CTR" >/dev/null 2>&1 || true; fi
}

run_and_probe() {
  local entrypoint cmd health user grpc_port http_port key key_sha run_env out
  mapfile -t entrypoint < <(image_field Entrypoint)
  mapfile -t cmd < <(image_field Cmd)
  mapfile -t health < <(image_field Healthcheck)
  user=$(image_field User)
  [ "${#health[@]}" -gt 0 ] || die "image has no HEALTHCHECK"
  log "image config: ENTRYPOINT [${entrypoint[*]}] CMD [${cmd[*]}] USER $user" \
    "HEALTHCHECK [${health[*]}]"
  case "$user" in "" | 0 | 0:* | root | root:*) die "image runs as root" ;; esac

  grpc_port=$(free_port)
  http_port=$(free_port)
  key=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  key_sha=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
  # Production-like: no dev profile, explicit credentials and a calling service. The local
  # backend and a dead STREAM_CHAT_URL keep every byte on 127.0.0.1.
  run_env=(
    -e "CHAT_GATEWAY_GRPC_ADDR=127.0.0.1:$grpc_port"
    -e "CHAT_GATEWAY_HTTP_ADDR=127.0.0.1:$http_port"
    -e "GETSTREAM_API_KEY=image-check"
    -e "GETSTREAM_API_SECRET=$(head -c 24 /dev/urandom | base64)"
    -e "CHAT_GATEWAY_BACKEND=local"
    -e "STREAM_CHAT_URL=http://127.0.0.1:9"
    -e "CHAT_GATEWAY_SERVICES=image-check:$key_sha:IssueToken"
    -e "CHAT_GATEWAY_SESSION_SECRET=$(head -c 24 /dev/urandom | base64)"
  )

  CTR=$(buildah from --name "chat-gateway-check-$$" "$CHECK_IMAGE")
  log "run: container $CTR, gRPC 127.0.0.1:$grpc_port, HTTP 127.0.0.1:$http_port"
  local server_log="$CACHE_DIR/image-check-server.log"
  # Its own session and process group (setsid; a background job is never a group leader, so
  # setsid does not fork and $! is the group id): cleanup signals buildah, its chroot runtime
  # and the server together.
  setsid buildah run --isolation chroot --network host "${run_env[@]}" "$CTR" -- \
    "${entrypoint[@]}" "${cmd[@]}" >"$server_log" 2>&1 &
  SERVER_PID=$!
  [ "$(ps -o pgid= -p "$SERVER_PID" | tr -d ' ')" = "$SERVER_PID" ] ||
    die "could not start the server in its own process group"

  local deadline=$((SECONDS + 90)) status=""
  while :; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$server_log" >&2
      die "the server exited before it became healthy"
    fi
    if status=$(timeout 20 buildah run --isolation chroot --network host "${run_env[@]}" \
        "$CTR" -- "${health[@]}" 2>&1); then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      cat "$server_log" >&2
      die "HEALTHCHECK did not pass within 90s (last: $status)"
    fi
    sleep 1
  done
  log "health: HEALTHCHECK says: $status"
  [[ "$status" == *SERVING* ]] || die "unexpected health output: $status"

  # The service behind the health check: an authenticated RPC from the host's client.
  out=$(timeout 30 "$PY" - "127.0.0.1:$grpc_port" "$key" <<'PYEOF'
import sys
import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb, chat_gateway_pb2_grpc as pb_grpc

target, key = sys.argv[1], sys.argv[2]
with grpc.insecure_channel(target) as channel:
    stub = pb_grpc.ChatGatewayStub(channel)
    md = (("authorization", f"Bearer {key}"),)
    reply = stub.IssueToken(pb.IssueTokenRequest(user_id="image-check-user"), metadata=md, timeout=10)
    assert reply.token.count(".") == 2 and reply.user_id == "image-check-user", reply
    try:
        stub.IssueToken(pb.IssueTokenRequest(user_id="u"), timeout=10)
        sys.exit("a call without a key was accepted")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
print("IssueToken OK (JWT issued), no key -> UNAUTHENTICATED")
PYEOF
  ) || die "RPC check failed: $out"
  log "rpc: $out"

  if out=$(timeout 10 python3 - "$http_port" <<'PYEOF' 2>&1
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/chat/stream/token", timeout=5)
    print("HTTP 200 without a session?!")
except urllib.error.HTTPError as exc:
    print(f"HTTP {exc.code} without a session")
PYEOF
  ); then log "http bridge: $out"; else log "http bridge: not reachable (not part of this build?)"; fi

  out=$(buildah run --isolation chroot "$CTR" -- python -c \
    'import os; print(os.getuid(), os.getcwd(), sorted(os.listdir(".")))')
  log "runtime: uid cwd data-dir = $out"
  [[ "$out" == "10001 /var/lib/chat-gateway "*chat-gateway.db* ]] ||
    die "expected uid 10001 and the SQLite file in /var/lib/chat-gateway"

  # Like `docker stop`: SIGTERM to the entrypoint process only; buildah exits after it.
  local server t
  server=$(pgrep -g "$SERVER_PID" -f -x "/opt/venv/bin/python -m gateway ${cmd[*]}" | head -1)
  [ -n "$server" ] || die "cannot find the server process in process group $SERVER_PID"
  kill -TERM "$server"
  for t in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    die "the server did not stop within 20s of SIGTERM"
  fi
  wait "$SERVER_PID" || die "the server exited non-zero after SIGTERM (log: $server_log)"
  SERVER_PID=""
  grep -q 'gateway stopped' "$server_log" || die "no graceful shutdown in $server_log"
  log "stop: SIGTERM -> graceful exit 0 after ~$((t / 5))s"
}

case "$MODE" in
  build)
    step "wheelhouse" wheelhouse
    step "build ($IMAGE)" build
    ;;
  check)
    [ "$(id -u)" -eq 0 ] || die "image-check needs root (buildah --isolation chroot, debootstrap)"
    command -v buildah >/dev/null || die "buildah missing: apt-get install -y buildah"
    command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
    mkdir -p "$CACHE_DIR"
    trap cleanup EXIT
    step "wheelhouse" wheelhouse
    step "base image" base_image
    step "build image" build_check_image
    step "run + health check" run_and_probe
    cleanup
    CTR=""
    log "image-check passed in $(since "$STARTED"); image $CHECK_IMAGE $(image_size "$CHECK_IMAGE")"
    ;;
  *)
    echo "usage: $0 build|check" >&2
    exit 2
    ;;
esac
