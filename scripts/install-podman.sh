#!/usr/bin/env bash
# Installs what scripts/build-images.sh drives: Debian's podman (4.3, building with its own buildah
# library), runc (crun refuses this kind of host's hybrid cgroup layout) and debootstrap (the base
# image, with no registry to pull it from). Idempotent; needs apt and root (or sudo).
set -euo pipefail
missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "install-podman: no apt-get to install ${missing[*]}" >&2; exit 1; }
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-podman: not root and no sudo" >&2; exit 1; }
  sudo_cmd="sudo -n"
fi
echo "install-podman: installing the Debian packages ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null
