{{/* Names: DNS labels of at most 63 characters. */}}
{{- define "embed-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "embed-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<suffix>", the full name shortened so the whole stays a 63-character label. */}}
{{- define "embed-server.suffixed" -}}
{{- $root := index . 0 }}{{ $suffix := index . 1 }}
{{- printf "%s-%s" (include "embed-server.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "embed-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "embed-server.labels" -}}
helm.sh/chart: {{ include "embed-server.chart" . }}
app.kubernetes.io/name: {{ include "embed-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: embed-server
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The server pods of this release, every revision. */}}
{{- define "embed-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "embed-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "embed-server.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "embed-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "embed-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "embed-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A label value from any string (model names may hold "/"). */}}
{{- define "embed-server.labelValue" -}}
{{- regexReplaceAll "[^A-Za-z0-9._-]" . "-" | trunc 63 | trimAll "-._" }}
{{- end }}

{{/* image reference: [root, image values, default tag] */}}
{{- define "embed-server.imageRef" -}}
{{- $image := index . 0 }}{{ $defaultTag := index . 1 }}
{{- $ref := printf "%s:%s" $image.repository (default $defaultTag $image.tag) }}
{{- if $image.digest }}{{ $ref = printf "%s@%s" $ref $image.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{- define "embed-server.defaultTag" -}}
{{- printf "%s-%s" .Chart.AppVersion (ternary "cuda" "cpu" .Values.gpu.enabled) }}
{{- end }}

{{/* --model for a model spec: [root, name, folder] */}}
{{- define "embed-server.modelArg" -}}
{{- $root := index . 0 }}{{ $name := index . 1 }}{{ $folder := index . 2 }}
{{- if hasKey $root.Values.model.cards $name }}
{{- printf "/etc/embed-server/cards/%s.yaml" $name }}
{{- else if and $root.Values.model.volume.enabled $folder }}
{{- printf "/models/%s" $folder }}
{{- else }}
{{- $name }}
{{- end }}
{{- end }}

{{- define "embed-server.blueGreen" -}}
{{- if eq .Values.rollout.strategy "BlueGreen" }}true{{ end }}
{{- end }}

{{- define "embed-server.autoscaled" -}}
{{- if or .Values.autoscaling.enabled .Values.keda.enabled }}true{{ end }}
{{- end }}

{{/*
The server Deployments, as a YAML list: one, or one per blueGreen revision. Each entry:
name (Deployment), service (the Service scraped for it), revision, modelName, modelArg,
fingerprint, replicas, image, active (takes the main Service's traffic and the autoscaler).
*/}}
{{- define "embed-server.instances" -}}
{{- $fullname := include "embed-server.fullname" . }}
{{- $defaultTag := include "embed-server.defaultTag" . }}
{{- if include "embed-server.blueGreen" . }}
{{- $bg := .Values.rollout.blueGreen }}
{{- if not $bg.revisions }}
{{- fail "rollout.strategy BlueGreen needs rollout.blueGreen.revisions (one entry per model revision to run)" }}
{{- end }}
{{- $seen := list }}
{{- range $bg.revisions }}
{{- if has .revision $seen }}
{{- fail (printf "rollout.blueGreen.revisions: revision %q is listed twice" .revision) }}
{{- end }}
{{- $seen = append $seen .revision }}
{{- end }}
{{- if not (has $bg.activeRevision $seen) }}
{{- fail (printf "rollout.blueGreen.activeRevision %q is not one of rollout.blueGreen.revisions (%s)" $bg.activeRevision (join ", " $seen)) }}
{{- end }}
{{- range $bg.revisions }}
{{- $name := include "embed-server.suffixed" (list $ .revision) }}
- name: {{ $name }}
  service: {{ $name }}
  revision: {{ .revision | quote }}
  modelName: {{ .name | quote }}
  modelArg: {{ include "embed-server.modelArg" (list $ .name (default "" .folder)) | quote }}
  fingerprint: {{ default "" .fingerprint | quote }}
  replicas: {{ ternary .replicaCount $.Values.replicaCount (hasKey . "replicaCount") }}
  image: {{ include "embed-server.imageRef" (list (merge (deepCopy (default dict .image)) $.Values.image) $defaultTag) | quote }}
  active: {{ eq .revision $bg.activeRevision }}
{{- end }}
{{- else }}
- name: {{ $fullname }}
  service: {{ $fullname }}
  revision: {{ .Values.model.revision | quote }}
  modelName: {{ .Values.model.name | quote }}
  modelArg: {{ include "embed-server.modelArg" (list . .Values.model.name .Values.model.volume.folder) | quote }}
  fingerprint: {{ .Values.model.fingerprint | quote }}
  replicas: {{ .Values.replicaCount }}
  image: {{ include "embed-server.imageRef" (list .Values.image $defaultTag) | quote }}
  active: true
{{- end }}
{{- end }}

{{/* A number as the server reads it: 30.0 -> "30", 0.5 -> "0.5"; lists comma-separated. */}}
{{- define "embed-server.envValue" -}}
{{- if kindIs "slice" . }}
{{- $items := list }}
{{- range . }}{{ $items = append $items (include "embed-server.envValue" .) }}{{ end }}
{{- join "," $items }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* A resource quantity ("2", 2, "1500m", "3Gi") in base units, as a float. */}}
{{- define "embed-server.quantity" -}}
{{- $q := toString . }}
{{- $suffix := regexFind "[A-Za-z]+$" $q }}
{{- $scale := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 }}
{{- if not (hasKey $scale $suffix) }}{{ fail (printf "unsupported quantity %q" $q) }}{{ end }}
{{- mulf (trimSuffix $suffix $q | float64) (get $scale $suffix) }}
{{- end }}

{{/* Fail when a request exceeds its limit (values merge with the defaults, so a default limit can linger). */}}
{{- define "embed-server.checkResources" -}}
{{- $where := index . 0 }}{{ $resources := index . 1 }}
{{- range $name, $limit := (default dict $resources.limits) }}
{{- $request := dig "requests" $name nil $resources }}
{{- if and (not (kindIs "invalid" $request)) (gt (include "embed-server.quantity" $request | float64) (include "embed-server.quantity" $limit | float64)) }}
{{- fail (printf "%s.requests.%s (%v) exceeds %s.limits.%s (%v). Values merge with the chart's defaults: raise the limit, or set %s.limits.%s: null to drop it." $where $name $request $where $name $limit $where $name) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "embed-server.redisHost" -}}
{{- printf "%s.%s.svc" (include "embed-server.suffixed" (list . "redis")) .Release.Namespace }}
{{- end }}

{{- define "embed-server.redisConfigured" -}}
{{- if or .Values.redis.enabled .Values.redis.external.url .Values.redis.external.existingSecret.name }}true{{ end }}
{{- end }}

{{/* Does the pod get a Secret-held API key / tenants file, and from which Secret? */}}
{{- define "embed-server.authSecretName" -}}
{{- default (include "embed-server.suffixed" (list . "auth")) .Values.auth.existingSecret.name }}
{{- end }}
{{- define "embed-server.apiKeysKey" -}}
{{- if .Values.auth.existingSecret.name }}{{ .Values.auth.existingSecret.apiKeysKey }}{{ else if .Values.auth.apiKeys }}api-keys{{ end }}
{{- end }}
{{- define "embed-server.tenantsKey" -}}
{{- if .Values.auth.existingSecret.name }}{{ .Values.auth.existingSecret.tenantsKey }}{{ else if .Values.auth.tenants }}tenants.yaml{{ end }}
{{- end }}

{{/* The grace period: given (checked) or derived. */}}
{{- define "embed-server.gracePeriod" -}}
{{- $minimum := add .Values.preStopSleepSeconds (ceil .Values.server.drainTimeoutS | int) 5 }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $minimum 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $minimum }}
{{- fail (printf "terminationGracePeriodSeconds %d is too small: it must exceed preStopSleepSeconds (%d) + server.drainTimeoutS (%v) + 5 s = %d, or the kubelet kills the server before in-flight requests finish. Raise it, lower server.drainTimeoutS, or leave it unset to derive it." (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) .Values.server.drainTimeoutS $minimum) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}
