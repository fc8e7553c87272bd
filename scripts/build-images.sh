#!/usr/bin/env bash
# Builds the Dockerfile's server, operator and export targets with podman, with no container registry:
# the Debian base is made here with debootstrap (from the mirror this machine's apt already uses) and
# imported, then the unchanged Dockerfile builds on it. Idempotent: the base is kept, layers are cached.
#
#   scripts/build-images.sh            build (or reuse) every image, then print their sizes
#   Exit 3 (and one line on stderr) when podman cannot run on this machine; tests skip with that line.
#
# Build times and sizes go to build/images/report.json for the tests and the notes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/build/images"
mkdir -p "$state"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")
base_image="localhost/kube-reranker/debian-base:bookworm-slim"
targets=(server operator export)
declare -A image_of=(
  [server]="kube-reranker/reranker-server:$version"
  [operator]="kube-reranker/reranker-operator:$version"
  [export]="kube-reranker/reranker-export:$version"
)

cannot() { echo "build-images: podman cannot run here: $*" >&2; exit 3; }

# -- podman and its host quirks ---------------------------------------------------------------------
bash "$root/scripts/install-podman.sh" || cannot "installing podman, runc and debootstrap failed (see above)"
# This host's hybrid cgroup layout is refused by crun (runc takes it), and root may not raise rlimits
# above its own hard limits, which podman's defaults ask for.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu); { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
cat >"$state/containers.conf" <<EOF
# Written by scripts/build-images.sh for this host; CONTAINERS_CONF points podman here.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$state/containers.conf"
podman info >/dev/null 2>"$state/podman-info.err" || cannot "$(tail -1 "$state/podman-info.err")"

# -- the base: debootstrap minbase, slimmed the way the debian:*-slim images are --------------------
if [ "${REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$base_image"; then
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
    | grep -m1 '/debian/$' || true)
  [ -n "$mirror" ] || cannot "no Debian mirror in this machine's apt sources to debootstrap from"
  echo "build-images: debootstrap --variant=minbase bookworm from this machine's apt mirror"
  rootfs="$state/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$state/debootstrap.log" 2>&1 \
    || { tail -5 "$state/debootstrap.log" >&2; cannot "debootstrap failed"; }
  # What debian:*-slim leaves out (debuerreotype --slimify): docs, man pages, locales; no apt lists.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  debian_version=$(cat "$rootfs/etc/debian_version")
  tar -C "$rootfs" --numeric-owner -c . | podman import \
    --change 'CMD ["bash"]' \
    --change "LABEL org.opencontainers.image.version=$debian_version" \
    --change 'LABEL org.opencontainers.image.description=debootstrap --variant=minbase bookworm, slimmed like debian:*-slim' \
    - "$base_image" >/dev/null
  rm -rf "$rootfs"
fi
base_version=$(podman image inspect --format '{{index .Labels "org.opencontainers.image.version"}}' "$base_image")
# The base goes in by digest, as a pinned registry base would (docs/security.md, "Pinning images"): the build
# then uses exactly that image, whatever the tag points at later.
base_digest=$(podman image inspect --format '{{.Digest}}' "$base_image")
base_ref="${base_image%:*}@$base_digest"
echo "build-images: base $base_ref (Debian $base_version, debootstrapped here)"

# -- the build -----------------------------------------------------------------------------------------
# The host's pip configuration (CA bundle, local wheels) reaches only the stages that run pip, on
# read-only mounts; the stages the runtime images are made of are built first without them, so no
# mount point, file or setting of this host lands in a final image.
pip_host=/run/pip-host
mapfile -t mounts < <(python3 "$root/scripts/pip_build_config.py" "$state/pip-host" "$pip_host")
mapfile -t pip_args <"$state/pip-host/build-args"
# Every phase gets the same build arguments (they are part of each layer's cache key); only the pip
# stages get the mounts, and a final target finds those stages in the layer cache.
common=(--pull=never --layers --build-arg "DEBIAN_IMAGE=$base_ref" --build-arg "VERSION=$version")
for a in "${pip_args[@]}"; do common+=(--build-arg "$a"); done
with_pip=(); for m in "${mounts[@]}"; do with_pip+=(-v "$m"); done

# One snapshot of the build context for every phase: a source edited mid-build must not make a final
# target miss the cached pip stages (and rebuild them without the mounts).
# Timestamps are zeroed so that the layer cache follows content alone (tests write __pycache__ beside
# the sources, which touches their directories).
context="$state/context"
rm -rf "$context" && mkdir -p "$context"
tar -C "$root" --exclude=__pycache__ --exclude='*.egg-info' -cf - \
  Dockerfile .dockerignore pyproject.toml README.md docker server operator | tar -C "$context" -xf -
find "$context" -exec touch --no-dereference --date=@0 {} +

# A rebuild leaves the image it replaced untagged. Those are removed once every target is built,
# children before parents, or every edit to the sources would keep another 4 GB of images on the disk
# (the layer cache keeps what a later build can reuse).
replaced=()
build() {  # build <target> <tag> [extra podman build args...]
  local target=$1 tag=$2 before; shift 2
  before=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  podman build "${common[@]}" "$@" --target "$target" -t "$tag" "$context" \
    >"$state/build-$target.log" 2>&1 || { tail -30 "$state/build-$target.log" >&2; return 1; }
  if [ -n "$before" ] && [ "$before" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
    replaced=("$before" "${replaced[@]}")
  fi
}

report="$state/report.json"
echo "{" >"$report.tmp"
build runtime-base localhost/kube-reranker/stage-runtime-base
build build localhost/kube-reranker/stage-build "${with_pip[@]}"
for target in "${targets[@]}"; do
  start=$(date +%s)
  build "$target-venv" "localhost/kube-reranker/stage-$target-venv" "${with_pip[@]}"
  build "$target" "${image_of[$target]}"
  seconds=$(( $(date +%s) - start ))
  size=$(podman image inspect --format '{{.Size}}' "${image_of[$target]}")
  printf 'build-images: %-8s %-42s %5d MB  built in %d s\n' \
    "$target" "${image_of[$target]}" $(( size / 1000000 )) "$seconds"
  printf '  "%s": {"image": "%s", "size_bytes": %d, "build_seconds": %d},\n' \
    "$target" "${image_of[$target]}" "$size" "$seconds" >>"$report.tmp"
done
printf '  "base": {"image": "%s", "reference": "%s", "debian_version": "%s"}\n}\n' "$base_image" "$base_ref" \
  "$base_version" >>"$report.tmp"
mv "$report.tmp" "$report"
for image in "${replaced[@]}"; do podman rmi "$image" >/dev/null 2>&1 || true; done
