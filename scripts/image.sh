#!/usr/bin/env bash
# Builds the container image offline (`make image`):
#   scripts/image.sh BIN_DIR
# BIN_DIR holds the release binaries (agent-runner, agent-runner-job).
#  1. A local base image: `debootstrap --variant=minbase` of this host's Debian
#     release with Deploy/Dockerfile's RUNTIME_PACKAGES, from the mirror apt
#     itself uses (read from /etc/apt/sources.list.d/*.sources or
#     sources.list; never written into the repository). The root is cached as a
#     tarball under ${AGENT_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-runner},
#     keyed on a hash of the release, the variant and the package list, and
#     imported as localhost/agent-runner-base:<release>-<key>.
#  2. `buildah bud` of Deploy/Dockerfile, target `prebuilt`, with BASE_IMAGE
#     pointing at that base and the two binaries as the build context, without
#     network: localhost/agent-runner:<version> and :latest.
# Needs root (debootstrap; podman's and buildah's storage), debootstrap,
# buildah and podman (scripts/bootstrap.sh installs them). Uses
# Deploy/containers.conf unless CONTAINERS_CONF is set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${1:?usage: $0 BIN_DIR}"
DOCKERFILE="$ROOT/Deploy/Dockerfile"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/Deploy/containers.conf}"
IMAGE="${IMAGE:-localhost/agent-runner}"

say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, and podman's and buildah's storage)"
for tool in debootstrap buildah podman; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/bootstrap.sh installs it)"
done
for bin in agent-runner agent-runner-job; do
  [[ -x "$BIN_DIR/$bin" ]] || die "$BIN_DIR/$bin is missing: run \`make build\` first"
done

# The one list of runtime packages is the Dockerfile's.
PACKAGES="$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p' "$DOCKERFILE")"
[[ -n "$PACKAGES" ]] || die "no ARG RUNTIME_PACKAGES=\"...\" line in $DOCKERFILE"
# shellcheck disable=SC1091
RELEASE="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
[[ -n "$RELEASE" ]] || die "no VERSION_CODENAME in /etc/os-release (the base must be this host's Debian release)"

# The first `deb` source of RELEASE itself in apt's configuration: "URI KEYRING"
# (KEYRING empty unless Signed-By names a file).
apt_source() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v suite="$RELEASE" 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; signed = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/ || index($i, ":") == 0) continue
          key = tolower(substr($i, 1, index($i, ":") - 1)); val = substr($i, index($i, ":") + 1)
          gsub(/^[ \t]+|[ \t]+$/, "", val)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "signed-by") signed = val
          else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled == "no" || (" " types " ") !~ / deb / || (" " suites " ") !~ (" " suite " ")) next
        split(uris, u, " "); if (signed !~ /^\//) signed = ""
        print u[1], signed; exit
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v suite="$RELEASE" '$1 == "deb" {
        signed = ""; i = 2
        if ($2 ~ /^\[/) {
          for (; i <= NF; i++) { if ($i ~ /^\[?signed-by=/) { signed = $i; sub(/^\[?signed-by=/, "", signed); sub(/\]$/, "", signed) }
                                 if ($i ~ /\]$/) { i++; break } }
        }
        if ($(i + 1) == suite) { print $i, signed; exit }
      }' "$f"
  done
}

KEY="$(printf '%s\n' "debootstrap --variant=minbase" "$RELEASE" $PACKAGES | sha256sum | cut -c1-16)"
CACHE="${AGENT_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-runner}"
BASE_TAR="$CACHE/base-$RELEASE-$KEY.tar"
BASE_IMAGE="localhost/agent-runner-base:$RELEASE-$KEY"

if podman image exists "$BASE_IMAGE"; then
  say "base $BASE_IMAGE present"
else
  if [[ ! -s "$BASE_TAR" ]]; then
    read -r MIRROR KEYRING < <(apt_source | head -n 1) || true
    [[ -n "${MIRROR:-}" ]] || die "no 'deb' source for $RELEASE in /etc/apt/sources.list or sources.list.d"
    say "debootstrap $RELEASE from $MIRROR with: $PACKAGES"
    mkdir -p "$CACHE"
    work="$(mktemp -d "$CACHE/root.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    debootstrap --variant=minbase ${KEYRING:+--keyring="$KEYRING"} --include="${PACKAGES// /,}" \
      "$RELEASE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
      || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    # Downloaded packages and indexes are not part of the image.
    rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* "$work/root/var/log/"*
    tar --numeric-owner -C "$work/root" -cf "$BASE_TAR.part" .
    mv "$BASE_TAR.part" "$BASE_TAR"
    rm -rf "$work"
    trap - EXIT
  fi
  say "importing $BASE_TAR as $BASE_IMAGE"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
fi

# The build context: only the two binaries (hard links when possible).
CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/agent-runner-image.XXXXXX")"
trap 'rm -rf "$CONTEXT"' EXIT
for bin in agent-runner agent-runner-job; do
  ln "$BIN_DIR/$bin" "$CONTEXT/$bin" 2>/dev/null || cp "$BIN_DIR/$bin" "$CONTEXT/$bin"
done
chmod 0755 "$CONTEXT"/agent-runner*
VERSION_LINE="$("$CONTEXT/agent-runner" --version)"
VERSION="${VERSION_LINE%% *}"
COMMIT="$(sed -n 's/.*(commit \(.*\))$/\1/p' <<<"$VERSION_LINE")"
say "building $IMAGE:$VERSION ($VERSION_LINE) on $BASE_IMAGE"
previous="$(podman image inspect --format '{{.Id}}' "$IMAGE:latest" 2>/dev/null || true)"
# docker format: OCI image configs cannot hold HEALTHCHECK.
buildah bud --quiet --format docker --network none --target prebuilt \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg AGENT_RUNNER_COMMIT="$COMMIT" \
  --tag "$IMAGE:$VERSION" --tag "$IMAGE:latest" -f "$DOCKERFILE" "$CONTEXT" >/dev/null
current="$(podman image inspect --format '{{.Id}}' "$IMAGE:latest")"
# The image this one replaces, once no tag names it (and no container uses it).
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  podman image rm "$previous" >/dev/null 2>&1 || true
fi
podman image inspect --format "image: $IMAGE:$VERSION {{.Id}} {{.Size}} bytes" "$IMAGE:$VERSION"
