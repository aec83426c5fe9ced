{{/* vim: set filetype=mustache: */}}

{{/* Chart name, overridable. */}}
{{- define "conference-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of the release's resources. */}}
{{- define "conference-app.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels common to every resource. */}}
{{- define "conference-app.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "conference-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: honey
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "x"). */}}
{{- define "conference-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conference-app.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Full labels of one component. */}}
{{- define "conference-app.componentLabels" -}}
{{ include "conference-app.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* ---------------------------------------------------------------- app */}}

{{/* SpinApp name = operator-made Deployment, container and Service name. */}}
{{- define "conference-app.appName" -}}
{{- required "voteApi.name is required: the SpinApp's name (mirrord targets deployment/<name>/container/<name>)" .Values.voteApi.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pod labels the spin-operator puts on the app's pods (stable selector). */}}
{{- define "conference-app.appPodSelector" -}}
core.spinkube.dev/app-name: {{ include "conference-app.appName" . }}
{{- end -}}

{{- define "conference-app.appImage" -}}
{{- $repo := required "voteApi.image.repository is required: the OCI reference you pushed with `spin registry push` (e.g. ghcr.io/your-org/honey)" .Values.voteApi.image.repository -}}
{{- if .Values.voteApi.image.digest -}}
{{- printf "%s@%s" $repo .Values.voteApi.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.voteApi.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "conference-app.executorName" -}}
{{- if .Values.voteApi.executor.name -}}
{{- .Values.voteApi.executor.name -}}
{{- else -}}
{{- printf "%s-%s" (include "conference-app.appName" .) .Values.voteApi.executor.type | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "conference-app.runtimeConfigSecretName" -}}
{{- default (printf "%s-runtime-config" (include "conference-app.fullname" .)) .Values.voteApi.runtimeConfig.existingSecret -}}
{{- end -}}

{{/* The runtime config TOML: the repo's runtime-config.toml itself
     (files/runtime-config.toml is a symlink to it), so the cluster runs with
     exactly the file `spin up` uses locally. voteApi.runtimeConfig.maxConnections,
     when set, replaces only the `max_connections = N` line. */}}
{{- define "conference-app.runtimeConfigToml" -}}
{{- $file := .Files.Get "files/runtime-config.toml" -}}
{{- if not $file -}}
{{- fail "files/runtime-config.toml is missing or empty: it must be the symlink to the repo's runtime-config.toml (render the chart from a full checkout)" -}}
{{- end -}}
{{- $line := "(?m)^max_connections[ \t]*=[ \t]*[0-9]+[ \t]*$" -}}
{{- if not (regexMatch $line $file) -}}
{{- fail "runtime-config.toml has no `max_connections = N` line under [outbound_pg]: the app's Postgres slot limit must be set there" -}}
{{- end -}}
{{- $n := .Values.voteApi.runtimeConfig.maxConnections -}}
{{- if or (kindIs "invalid" $n) (eq (toString $n) "") -}}
{{- $file -}}
{{- else -}}
{{- if not (regexMatch "^[1-9][0-9]*$" (toString $n)) -}}
{{- fail (printf "voteApi.runtimeConfig.maxConnections must be a positive integer, not %v" $n) -}}
{{- end -}}
{{- regexReplaceAll $line $file (printf "max_connections = %s" (toString $n)) -}}
{{- end -}}
{{- end -}}

{{- define "conference-app.publicUrl" -}}
{{- if .Values.voteApi.publicUrl -}}
{{- .Values.voteApi.publicUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) (include "conference-app.ingressHost" .) -}}
{{- else -}}
{{- printf "http://%s.%s.svc.%s" (include "conference-app.appName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{- define "conference-app.ingressHost" -}}
{{- required "ingress.host is required when ingress.enabled: the public host name the QR codes point to (e.g. honey-we-have-a-problem.freeddns.org)" .Values.ingress.host -}}
{{- end -}}

{{/* ----------------------------------------------------------- services */}}

{{- define "conference-app.postgresqlName" -}}
{{- printf "%s-postgresql" (include "conference-app.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "conference-app.redisName" -}}
{{- printf "%s-redis" (include "conference-app.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "conference-app.prometheusName" -}}
{{- printf "%s-prometheus" (include "conference-app.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "conference-app.alertmanagerName" -}}
{{- printf "%s-alertmanager" (include "conference-app.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Headless Service over the app's pods, ready or not, for scraping. */}}
{{- define "conference-app.appMetricsName" -}}
{{- printf "%s-metrics" (include "conference-app.appName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "conference-app.dbHost" -}}
{{- printf "%s:5432" (include "conference-app.postgresqlName" .) -}}
{{- end -}}

{{- define "conference-app.redisHost" -}}
{{- printf "%s:6379" (include "conference-app.redisName" .) -}}
{{- end -}}

{{/* ------------------------------------------------------------ secrets */}}

{{- define "conference-app.postgresqlSecretName" -}}
{{- default (printf "%s-postgresql" (include "conference-app.fullname" .)) .Values.secrets.postgresql.existingSecret -}}
{{- end -}}

{{- define "conference-app.postgresqlPassword" -}}
{{- required "secrets.postgresql.password is required (or set secrets.postgresql.existingSecret): the password of the app's PostgreSQL user; it is never defaulted" .Values.secrets.postgresql.password -}}
{{- end -}}

{{- define "conference-app.adminSecretName" -}}
{{- default (printf "%s-admin" (include "conference-app.fullname" .)) .Values.secrets.admin.existingSecret -}}
{{- end -}}

{{- define "conference-app.slackSecretName" -}}
{{- default (printf "%s-slack" (include "conference-app.fullname" .)) .Values.secrets.slack.existingSecret -}}
{{- end -}}

{{- define "conference-app.slackSecretKey" -}}
{{- if .Values.secrets.slack.existingSecret -}}
{{- .Values.secrets.slack.existingSecretKey -}}
{{- else -}}
webhook-url
{{- end -}}
{{- end -}}

{{/* Where Alertmanager finds the webhook URL; must match api_url_file in
     monitoring/alertmanager/alertmanager.yml. */}}
{{- define "conference-app.slackSecretDir" -}}/etc/alertmanager/secrets{{- end -}}
{{- define "conference-app.slackSecretFile" -}}slack-webhook-url{{- end -}}

{{/* Image reference helper: (dict "image" .Values.x.image). */}}
{{- define "conference-app.image" -}}
{{- printf "%s:%s" .image.repository .image.tag -}}
{{- end -}}

{{/* prometheus.yml. rule_files is relative to the config file's directory,
     where the ConfigMap also puts alerts.yml. */}}
{{- define "conference-app.prometheusConfig" -}}
global:
  scrape_interval: {{ .Values.prometheus.scrapeInterval }}
  evaluation_interval: {{ .Values.prometheus.evaluationInterval }}
  external_labels:
    namespace: {{ .Release.Namespace | quote }}
rule_files:
  - alerts.yml
{{- if .Values.alertmanager.enabled }}
alerting:
  alertmanagers:
    - static_configs:
        - targets:
            - {{ printf "%s:9093" (include "conference-app.alertmanagerName" .) | quote }}
{{- end }}
scrape_configs:
  - job_name: honey
    metrics_path: /metrics
    dns_sd_configs:
      - names:
          - {{ printf "%s.%s.svc.%s" (include "conference-app.appMetricsName" .) .Release.Namespace .Values.clusterDomain | quote }}
        type: A
        port: 80
        refresh_interval: 15s
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
{{- end -}}

{{/* Egress rule for DNS: to the DNS namespace when networkPolicy.dnsNamespaceSelector
     is set, else port 53 to anywhere (node-local DNS caches live on the node). */}}
{{- define "conference-app.dnsEgressRule" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dnsNamespaceSelector }}
  to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
  {{- end }}
{{- end -}}

{{/* The max_connections the runtime config above sets: reported to the app as the Spin
     variable db_pool_size, because the app cannot read the host's runtime config and the
     projector's gauge and DatabasePoolExhausted compare against it. */}}
{{- define "conference-app.maxConnections" -}}
{{- $toml := include "conference-app.runtimeConfigToml" . -}}
{{- regexReplaceAll "(?s).*(?m:^max_connections[ \t]*=[ \t]*([0-9]+)[ \t]*$).*" $toml "${1}" -}}
{{- end -}}
