#!/usr/bin/env bash
# Download the upstream schemas tests/k8s/run.sh validates against, for a
# machine that has no shared directory (e.g. a GitHub-hosted CI runner):
#
#   tests/k8s/fetch-schemas.sh DIR      -> DIR/schemas/*, then SHARED_DIR=DIR tests/k8s/run.sh
#
# The files are pinned to upstream commits and checked against sha256 sums,
# the same files and sums as the shared schemas/README.md lists, so every
# machine validates against identical bytes. Files already present and
# matching are not downloaded again.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DEST="$1/schemas"
mkdir -p "$DEST"

OPERATOR=https://raw.githubusercontent.com/spinframework/spin-operator
MIRRORD=https://raw.githubusercontent.com/metalbear-co/mirrord
# name | sha256 | url
SCHEMAS=(
  "spinapp-crd.yaml|934ab738013ad6df08e86f19ac61f50382e522b353591316a1491fb0c6e95174|$OPERATOR/943f5b1732b185f0f442c0fd813cf0ebf6839eca/config/crd/bases/core.spinkube.dev_spinapps.yaml"
  "spinapp-crd-v0.6.1.yaml|08051de70925efe25bafca636c9b9410a4fe61e17015bd199be1efa04a5b5762|$OPERATOR/96c9d1d1d69c2c04e005375c44f323fb10e31002/config/crd/bases/core.spinkube.dev_spinapps.yaml"
  "spinappexecutor-crd.yaml|c290585b469a6076eeab764af63be1aac11d584c903b5f72a45a1df807634107|$OPERATOR/943f5b1732b185f0f442c0fd813cf0ebf6839eca/config/crd/bases/core.spinkube.dev_spinappexecutors.yaml"
  "mirrord-schema.json|f530504e835b3771aa0f00b43f8729be42131f73faa4962b70fe0b5b4299b0a9|$MIRRORD/7e98c39a692d59830a199307159168b984ed146c/mirrord-schema.json"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

for entry in "${SCHEMAS[@]}"; do
  IFS='|' read -r name sum url <<<"$entry"
  out="$DEST/$name"
  if [ -f "$out" ] && [ "$(sha "$out")" = "$sum" ]; then
    echo "fetch-schemas: $name already present"
    continue
  fi
  echo "fetch-schemas: $name <- $url"
  curl -fsSL --retry 3 -o "$out.tmp" "$url"
  if [ "$(sha "$out.tmp")" != "$sum" ]; then
    echo "fetch-schemas: $name: sha256 $(sha "$out.tmp") != pinned $sum" >&2
    rm -f "$out.tmp"
    exit 1
  fi
  mv "$out.tmp" "$out"
done
