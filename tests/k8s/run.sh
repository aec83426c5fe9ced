#!/usr/bin/env bash
# Offline checks of everything that runs in the cluster: the Helm chart
# (helm/conference-app), the alert rules and Alertmanager config (monitoring/)
# and the mirrord config (.mirrord/), plus the CI workflow that publishes the
# app (.github/workflows/ci.yml). No cluster is needed: each manifest is
# checked with the real tools (helm, kubernetes-validate, check-jsonschema
# against the SpinKube CRDs and GitHub's workflow schema, promtool, amtool).
#
#   tests/k8s/run.sh            installs the tools first (tests/k8s/install-tools.sh)
#   tests/k8s/fetch-schemas.sh  downloads the schemas (run.sh does it into .cache/ when it
#                               finds no shared directory)
#
# Environment: SHARED_DIR (the directory holding schemas/; default: the first
# of <repo>/../shared and /work/shared that has schemas/ — CI may check the
# repo out elsewhere), K8S_VERSION (Kubernetes schema version for
# kubernetes-validate, default 1.34.0).
# Prints one line per check and ends with "N passed, M failed"; exits non-zero
# when any check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# The schemas are upstream files kept outside the repo. Find (or fetch) them before
# installing anything, so a missing directory fails in a second, clearly.
SCHEMA_FILES=(spinapp-crd.yaml spinapp-crd-v0.6.1.yaml spinappexecutor-crd.yaml mirrord-schema.json)
if [ -n "${SHARED_DIR:-}" ]; then
  [ -d "$SHARED_DIR/schemas" ] || {
    echo "k8s: SHARED_DIR=$SHARED_DIR has no schemas/ directory" >&2; exit 1; }
else
  for candidate in "$ROOT/../shared" /work/shared; do
    if [ -d "$candidate/schemas" ]; then SHARED_DIR="$(cd "$candidate" && pwd)"; break; fi
  done
  if [ -z "${SHARED_DIR:-}" ]; then
    # Not one of the project's machines: the pinned upstream files, downloaded once.
    SHARED_DIR="$ROOT/.cache/k8s-shared"
    echo "k8s: no schemas/ in $ROOT/../shared or /work/shared; fetching the pinned files into $SHARED_DIR" >&2
    "$ROOT/tests/k8s/fetch-schemas.sh" "$SHARED_DIR" >&2 || {
      echo "k8s: cannot download the schemas; set SHARED_DIR to a directory whose schemas/" \
        "holds ${SCHEMA_FILES[*]}" >&2
      exit 1; }
  fi
fi
SCHEMAS="$SHARED_DIR/schemas"
for f in "${SCHEMA_FILES[@]}"; do
  [ -f "$SCHEMAS/$f" ] || { echo "k8s: $SCHEMAS/$f is missing" >&2; exit 1; }
done
K8S_VERSION="${K8S_VERSION:-1.34.0}"
CHART="$ROOT/helm/conference-app"
RELEASE=conference-app
NAMESPACE=conference-app          # the namespace .mirrord/mirrord.json targets
FULLNAME=conference-app           # what the chart names resources for that release

VENV="$ROOT/.cache/k8s-venv"
HELM="$ROOT/.cache/k8s-tools/bin/helm"
PY="$VENV/bin/python"
CHECKS="$ROOT/tests/k8s/k8s_checks.py"

echo "k8s: schemas from $SCHEMAS"
echo "k8s: installing/locating tools"
bash "$ROOT/tests/k8s/install-tools.sh" | sed 's/^/  /'

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

PASSED=0
FAILED=0
N=0
# check "description" command... : one counted line per check. The command
# runs in a subshell with `set -e` in force; its output is shown on failure.
check() {
  local name="$1"; shift
  N=$((N + 1))
  set +e
  ( set -euo pipefail; "$@" ) >"$TMP/check.log" 2>&1
  local rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    PASSED=$((PASSED + 1))
    echo "ok $N - $name"
  else
    FAILED=$((FAILED + 1))
    echo "not ok $N - $name"
    sed 's/^/    | /' "$TMP/check.log" | tail -n 40
  fi
}

# Values that have no default on purpose (test stand-ins, not secrets).
REQUIRED=(
  --set voteApi.image.repository=registry.example.test/honey
  --set ingress.host=honey.example.test
  --set secrets.postgresql.password=test-only-password
  --set secrets.admin.token=test-only-token
  --set secrets.slack.webhookUrl=https://hooks.example.test/services/TEST
)
# A render that exercises the other branches: TLS via cert-manager, the
# containerd-shim-spin executor, existing Secrets, a different pool size.
VARIANT=(
  --set voteApi.image.repository=registry.example.test/honey
  --set voteApi.image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000
  --set ingress.host=honey.example.test
  --set ingress.tls.enabled=true
  --set ingress.tls.clusterIssuer=letsencrypt-test
  --set voteApi.executor.type=containerd-shim-spin
  --set voteApi.runtimeConfig.maxConnections=2
  --set secrets.postgresql.existingSecret=honey-db
  --set secrets.admin.existingSecret=honey-admin
  --set secrets.slack.existingSecret=slack-webhook
  --set 'networkPolicy.dnsNamespaceSelector.kubernetes\.io/metadata\.name=kube-system'
)

render() { # render OUT [helm args...]
  local out="$1"; shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$out" 2>"$out.stderr" || {
    cat "$out.stderr"; return 1; }
}

# expect_fail "message" helm-args... : the render must fail and say `message`.
expect_fail() {
  local message="$1"; shift
  if "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$TMP/fail.out" 2>&1; then
    echo "render succeeded but should have failed with: $message"; return 1
  fi
  grep -F -- "$message" "$TMP/fail.out" || { echo "render failed without the message '$message':"; cat "$TMP/fail.out"; return 1; }
}

without() { # without KEY: the REQUIRED args minus the one setting KEY
  local key="$1" a
  for a in "${REQUIRED[@]}"; do
    [ "$a" = "--set" ] && continue
    case "$a" in "$key="*) ;; *) printf -- '--set\n%s\n' "$a" ;; esac
  done
}

R_DEFAULT="$TMP/default.yaml"
R_EXAMPLE="$TMP/example.yaml"
R_VARIANT="$TMP/variant.yaml"

# ------------------------------------------------------------------ chart
check "helm lint --strict (defaults + required values)" \
  "$HELM" lint --strict "$CHART" --namespace "$NAMESPACE" "${REQUIRED[@]}"
check "helm lint --strict (values-example.yaml)" \
  "$HELM" lint --strict "$CHART" --namespace "$NAMESPACE" -f "$CHART/values-example.yaml"
check "helm template: defaults + required values" render "$R_DEFAULT" "${REQUIRED[@]}"
check "helm template: values-example.yaml override" render "$R_EXAMPLE" -f "$CHART/values-example.yaml"
check "helm template: TLS, containerd-shim-spin, existing Secrets, max_connections=2" \
  render "$R_VARIANT" "${VARIANT[@]}"

for spec in \
  "secrets.postgresql.password|secrets.postgresql.password is required" \
  "secrets.admin.token|secrets.admin.token is required" \
  "secrets.slack.webhookUrl|secrets.slack.webhookUrl is required" \
  "ingress.host|ingress.host is required" \
  "voteApi.image.repository|voteApi.image.repository is required"; do
  key="${spec%%|*}"; message="${spec#*|}"
  mapfile -t args < <(without "$key")
  check "render without $key fails: \"$message\"" expect_fail "$message" "${args[@]}"
done
mapfile -t args < <(without secrets.slack.webhookUrl)
# The one-line debugging commands, exactly as NOTES and the chart README show them.
MIRRORD_SPIN="mirrord exec -f .mirrord/mirrord.json -- spin up --listen 127.0.0.1:3000 --runtime-config-file runtime-config.toml"
MIRRORD_HONEY="mirrord exec -f .mirrord/mirrord.json -- target/release/honey up --listen 127.0.0.1:3000 --runtime-config-file runtime-config.toml"
notes() {
  "$HELM" install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --dry-run=client \
    -f "$CHART/values-example.yaml" >"$TMP/notes.out" 2>/dev/null
  grep -F -- "$MIRRORD_SPIN" "$TMP/notes.out"
  grep -F -- "$MIRRORD_HONEY" "$TMP/notes.out"
  grep -F "?referral=conf-partner-2026" "$TMP/notes.out"
}
check "helm install --dry-run=client renders NOTES (QR URLs, mirrord line)" notes
check "alertmanager.enabled=false needs no Slack webhook" \
  render "$TMP/no-am.yaml" "${args[@]}" --set alertmanager.enabled=false
check "voteApi.runtimeConfig.maxConnections=0 fails: \"must be a positive integer\"" \
  expect_fail "must be a positive integer" "${REQUIRED[@]}" --set voteApi.runtimeConfig.maxConnections=0

validate_core() { # validate_core RENDER [KUBERNETES_VERSION]
  "$PY" "$CHECKS" core "$1" "$1.core.yaml"
  "$VENV/bin/kubernetes-validate" --strict -k "${2:-$K8S_VERSION}" "$1.core.yaml"
}
check "kubernetes-validate --strict -k $K8S_VERSION: core resources (defaults)" validate_core "$R_DEFAULT"
check "kubernetes-validate --strict -k $K8S_VERSION: core resources (example)" validate_core "$R_EXAMPLE"
check "kubernetes-validate --strict -k $K8S_VERSION: core resources (variant)" validate_core "$R_VARIANT"
check "kubernetes-validate --strict -k 1.25.0 (Chart.yaml kubeVersion floor): core resources (defaults)" \
  validate_core "$R_DEFAULT" 1.25.0

crd_validate() { # crd_validate CRD_FILE KIND RENDER
  "$PY" "$CHECKS" crd-schema "$SCHEMAS/$1" v1alpha1 "$TMP/$1.schema.json"
  "$PY" "$CHECKS" object "$3" "$2" "$TMP/$2.json"
  "$VENV/bin/check-jsonschema" --schemafile "$TMP/$1.schema.json" "$TMP/$2.json"
}
for r in default variant; do
  check "SpinApp ($r) matches spinapp-crd.yaml (main) openAPIV3Schema, unknown fields rejected" \
    crd_validate spinapp-crd.yaml SpinApp "$TMP/$r.yaml"
  check "SpinApp ($r) matches spinapp-crd-v0.6.1.yaml (latest release) openAPIV3Schema" \
    crd_validate spinapp-crd-v0.6.1.yaml SpinApp "$TMP/$r.yaml"
  check "SpinAppExecutor ($r) matches spinappexecutor-crd.yaml openAPIV3Schema" \
    crd_validate spinappexecutor-crd.yaml SpinAppExecutor "$TMP/$r.yaml"
done

check "SpinApp variables are declared in spin.toml; db_url/admin_token come from Secrets" \
  "$PY" "$CHECKS" spin-vars "$R_DEFAULT" "$ROOT/spin.toml"
check "every container (and the SpinApp) has cpu/memory requests and limits" \
  "$PY" "$CHECKS" resources "$R_DEFAULT"
check "every pod (and the SpinApp's) is under an Ingress+Egress NetworkPolicy" \
  "$PY" "$CHECKS" netpol "$R_DEFAULT"
check "every ConfigMap/Secret is under 1 MiB" "$PY" "$CHECKS" sizes "$R_DEFAULT"

runtime_config() { # byte for byte: the cluster runs the very file `spin up` uses locally
  "$PY" "$CHECKS" secret-key "$R_DEFAULT" "$FULLNAME-runtime-config" runtime-config.toml "$TMP/rc.toml"
  cmp "$TMP/rc.toml" "$ROOT/runtime-config.toml"
  "$PY" "$CHECKS" toml-equal "$TMP/rc.toml" "$ROOT/runtime-config.toml"
  grep -Eq '^\[outbound_pg\]' "$ROOT/runtime-config.toml"
  grep -Eq '^max_connections = 5$' "$ROOT/runtime-config.toml"
}
check "runtime-config Secret decodes to the repo's runtime-config.toml ([outbound_pg] max_connections = 5)" runtime_config

sql_files() { "$PY" "$CHECKS" sql "$R_DEFAULT" "$FULLNAME" "$ROOT"; }
check "SQL ConfigMaps hold exactly the repo's migrations/*.sql and seed/*.sql" sql_files

cat >"$TMP/default.expect" <<EOF
find('SpinApp')['spec']['executor'] == find('SpinAppExecutor')['metadata']['name']
find('SpinApp')['spec']['runtimeConfig'] == {'loadFromSecret': '$FULLNAME-runtime-config'}
find('SpinAppExecutor')['spec']['deploymentConfig']['spinImage'].startswith('ghcr.io/spinframework/spin:')
'runtimeClassName' not in find('SpinAppExecutor')['spec']['deploymentConfig']
find('SpinApp')['spec']['image'] == 'registry.example.test/honey:0.1.0'
find('SpinApp')['spec']['checks']['readiness']['httpGet']['path'] == '/health'
find('SpinApp')['spec']['checks']['liveness']['httpGet']['path'] == '/health'
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['public_url'] == 'http://honey.example.test'
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['db_host'] == '$FULLNAME-postgresql:5432'
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['redis_url'] == 'redis://$FULLNAME-redis:6379'
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['db_pool_size'] == '5'
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['referral_code'] == 'conf-partner-2026'
secret('$FULLNAME-postgresql', 'db-url') == 'postgres://honey:test-only-password@$FULLNAME-postgresql:5432/honey'
'statement_timeout=3s' in find('StatefulSet')['spec']['template']['spec']['containers'][0]['args']
find('StatefulSet')['spec']['volumeClaimTemplates'][0]['spec']['resources']['requests']['storage'] == '2Gi'
find('Job')['metadata']['annotations']['helm.sh/hook'] == 'post-install,post-upgrade'
any(e['name'] == 'PGOPTIONS' and 'statement_timeout=0' in e['value'] for e in find('Job')['spec']['template']['spec']['containers'][0]['env'])
find('Ingress')['spec']['rules'][0]['host'] == 'honey.example.test'
find('Ingress')['spec']['rules'][0]['http']['paths'][0]['backend']['service'] == {'name': 'honey', 'port': {'number': 80}}
'tls' not in find('Ingress')['spec']
find('Service', 'honey-metrics')['spec']['publishNotReadyAddresses'] is True
find('Service', 'honey-metrics')['spec']['selector'] == {'core.spinkube.dev/app-name': 'honey'}
'to' not in find('NetworkPolicy', '$FULLNAME-app')['spec']['egress'][0]
EOF
check "default render: executor, runtime config, variables, statement_timeout, hook Job, Ingress" \
  "$PY" "$CHECKS" expect "$R_DEFAULT" "$TMP/default.expect"

cat >"$TMP/variant.expect" <<EOF
find('SpinAppExecutor')['spec']['deploymentConfig'].get('runtimeClassName') == 'wasmtime-spin-v2'
'spinImage' not in find('SpinAppExecutor')['spec']['deploymentConfig']
find('SpinApp')['spec']['image'].startswith('registry.example.test/honey@sha256:')
find('Ingress')['spec']['tls'] == [{'hosts': ['honey.example.test'], 'secretName': '$FULLNAME-tls'}]
find('Ingress')['metadata']['annotations']['cert-manager.io/cluster-issuer'] == 'letsencrypt-test'
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['public_url'] == 'https://honey.example.test'
{v['name']: v.get('valueFrom') for v in find('SpinApp')['spec']['variables']}['db_url'] == {'secretKeyRef': {'name': 'honey-db', 'key': 'db-url'}}
{v['name']: v.get('valueFrom') for v in find('SpinApp')['spec']['variables']}['admin_token'] == {'secretKeyRef': {'name': 'honey-admin', 'key': 'admin-token'}}
[d['metadata']['name'] for d in docs if d['kind'] == 'Secret'] == ['$FULLNAME-runtime-config']
[v for v in find('Deployment', '$FULLNAME-alertmanager')['spec']['template']['spec']['volumes'] if v['name'] == 'slack-webhook'][0]['secret']['secretName'] == 'slack-webhook'
'max_connections = 2' in secret('$FULLNAME-runtime-config', 'runtime-config.toml')
find('NetworkPolicy', '$FULLNAME-app')['spec']['egress'][0]['to'] == [{'namespaceSelector': {'matchLabels': {'kubernetes.io/metadata.name': 'kube-system'}}}]
secret('$FULLNAME-runtime-config', 'runtime-config.toml') == open('runtime-config.toml').read().replace('max_connections = 5', 'max_connections = 2')
{v['name']: v.get('value') for v in find('SpinApp')['spec']['variables']}['db_pool_size'] == '2'
EOF
check "variant render: shim executor, TLS + cert-manager, existing Secrets, max_connections = 2" \
  "$PY" "$CHECKS" expect "$R_VARIANT" "$TMP/variant.expect"

packaged() { # helm package follows the symlinks: the .tgz carries the real files
  "$HELM" package "$CHART" --destination "$TMP/pkg" >/dev/null 2>"$TMP/pkg.stderr"
  mkdir -p "$TMP/pkg/x"
  tar -xzf "$TMP"/pkg/conference-app-*.tgz -C "$TMP/pkg/x"
  cmp "$TMP/pkg/x/conference-app/files/prometheus/alerts.yml" monitoring/prometheus/alerts.yml
  cmp "$TMP/pkg/x/conference-app/files/alertmanager/alertmanager.yml" monitoring/alertmanager/alertmanager.yml
  cmp "$TMP/pkg/x/conference-app/files/runtime-config.toml" runtime-config.toml
  local f
  for f in migrations/*.sql seed/*.sql; do
    [ -e "$f" ] || continue
    cmp "$TMP/pkg/x/conference-app/files/sql/$f" "$f"
  done
  "$HELM" template "$RELEASE" "$TMP"/pkg/conference-app-*.tgz --namespace "$NAMESPACE" "${REQUIRED[@]}" >"$TMP/pkg.yaml" 2>/dev/null
  cmp "$TMP/pkg.yaml" "$R_DEFAULT"
}
check "helm package ships the linked alerts/alertmanager/SQL files; the .tgz renders identically" packaged

# ------------------------------------------------------------- monitoring
prom_rendered() {
  mkdir -p "$TMP/prom"
  "$PY" "$CHECKS" configmap-key "$R_DEFAULT" "$FULLNAME-prometheus" prometheus.yml "$TMP/prom/prometheus.yml"
  "$PY" "$CHECKS" configmap-key "$R_DEFAULT" "$FULLNAME-prometheus" alerts.yml "$TMP/prom/alerts.yml"
  promtool check rules "$TMP/prom/alerts.yml"
  cmp "$TMP/prom/alerts.yml" monitoring/prometheus/alerts.yml
}
check "rendered Prometheus rules pass promtool check rules and equal monitoring/prometheus/alerts.yml" prom_rendered
check "rendered prometheus.yml (with its rules) passes promtool check config" \
  promtool check config "$TMP/prom/prometheus.yml"
check "promtool check rules monitoring/prometheus/alerts.yml" \
  promtool check rules monitoring/prometheus/alerts.yml
check "promtool test rules monitoring/prometheus/alerts_test.yml (phase 1 quiet, phase 2 fires)" \
  promtool test rules monitoring/prometheus/alerts_test.yml

am_rendered() {
  "$PY" "$CHECKS" configmap-key "$R_DEFAULT" "$FULLNAME-alertmanager" alertmanager.yml "$TMP/am-rendered.yml"
  amtool check-config "$TMP/am-rendered.yml"
  "$PY" "$CHECKS" alertmanager-mount "$R_DEFAULT" "$FULLNAME"
}
check "rendered Alertmanager config passes amtool check-config; api_url_file is the mounted Secret" am_rendered

am_local() { # the repo's config, pointed at a dummy webhook file in a temp dir
  mkdir -p "$TMP/am"
  printf 'https://hooks.example.test/services/DUMMY\n' >"$TMP/am/slack-webhook-url"
  sed "s#/etc/alertmanager/secrets/slack-webhook-url#$TMP/am/slack-webhook-url#" \
    monitoring/alertmanager/alertmanager.yml >"$TMP/am/alertmanager.yml"
  grep -q "api_url_file: $TMP/am/slack-webhook-url" "$TMP/am/alertmanager.yml"
  ! grep -Eq '^\s*(slack_)?api_url:' "$TMP/am/alertmanager.yml"
  amtool check-config "$TMP/am/alertmanager.yml"
  grep -q 'send_resolved: true' "$TMP/am/alertmanager.yml"
}
check "amtool check-config monitoring/alertmanager/alertmanager.yml (dummy webhook file)" am_local

# ---------------------------------------------------------------- mirrord
check "check-jsonschema .mirrord/mirrord.json against mirrord-schema.json" \
  "$VENV/bin/check-jsonschema" --schemafile "$SCHEMAS/mirrord-schema.json" .mirrord/mirrord.json
check ".mirrord/mirrord.json targets the SpinApp's deployment/container, steals, maps 3000->80, imports SPIN_VARIABLE_*, remote outgoing+DNS" \
  "$PY" "$CHECKS" mirrord .mirrord/mirrord.json "$R_DEFAULT" "$NAMESPACE"
readme_mirrord() {
  grep -F -- "$MIRRORD_SPIN" "$CHART/README.md"
  grep -F -- "$MIRRORD_HONEY" "$CHART/README.md"
}
check "chart README shows the mirrord exec lines for spin up and target/release/honey up" readme_mirrord

# --------------------------------------------------------------------- CI
WORKFLOW=.github/workflows/ci.yml
check "check-jsonschema --builtin-schema vendor.github-workflows $WORKFLOW" \
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$WORKFLOW"
check "$WORKFLOW runs .ci/run on push/PR; on v* tags builds and spin registry push-es to ghcr.io" \
  "$PY" "$CHECKS" workflow "$WORKFLOW"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
