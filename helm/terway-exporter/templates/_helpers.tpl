{{/* Names and labels shared by every object of the chart. */}}

{{- define "terway-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name alone when it already contains the chart name (helm install terway-exporter ...). */}}
{{- define "terway-exporter.fullname" -}}
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

{{- define "terway-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "terway-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "terway-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "terway-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: terway-exporter
{{- end }}

{{- define "terway-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "terway-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "terway-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The exporter's command-line flags, from .Values.exporter; empty values keep the exporter's defaults. */}}
{{- define "terway-exporter.args" -}}
{{- $e := .Values.exporter -}}
- serve
- {{ printf "--listen-address=:%d" (int .Values.port) | quote }}
{{- with $e.region }}
- {{ printf "--region=%s" . | quote }}
{{- end }}
{{- with $e.vpcId }}
- {{ printf "--vpc-id=%s" . | quote }}
{{- end }}
{{- with $e.vswitchIds }}
- {{ printf "--vswitch-ids=%s" (join "," .) | quote }}
{{- end }}
{{- with $e.securityGroupIds }}
- {{ printf "--security-group-ids=%s" (join "," .) | quote }}
{{- end }}
{{- with $e.cloudPollInterval }}
- {{ printf "--cloud-poll-interval=%s" . | quote }}
{{- end }}
{{- with $e.cloudApiRate }}
- {{ printf "--cloud-api-rate=%v" . | quote }}
{{- end }}
- {{ printf "--terway-namespace=%s" $e.terwayNamespace | quote }}
- {{ printf "--log-level=%s" $e.logLevel | quote }}
- {{ printf "--log-format=%s" $e.logFormat | quote }}
{{- if and $e.metricAllowlist $e.metricDenylist }}
{{- fail "exporter.metricAllowlist and exporter.metricDenylist are exclusive: set one of them" }}
{{- end }}
{{- with $e.metricAllowlist }}
- {{ printf "--metric-allowlist=%s" (join "," .) | quote }}
{{- end }}
{{- with $e.metricDenylist }}
- {{ printf "--metric-denylist=%s" (join "," .) | quote }}
{{- end }}
{{- if not $e.nodeMetrics }}
- "--no-node-metrics"
{{- end }}
{{- if .Values.webConfig.enabled }}
- {{ printf "--web.config.file=%s" (include "terway-exporter.webConfigPath" .) | quote }}
{{- end }}
{{- range $e.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Environment for the chosen credential source. RRSA and the ECS RAM role need no secret at all. */}}
{{- define "terway-exporter.credentialEnv" -}}
{{- $c := .Values.credentials }}
{{- if eq $c.source "existingSecret" }}
{{- $s := $c.existingSecret }}
- name: ALIBABA_CLOUD_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ required "credentials.existingSecret.name is required when credentials.source is existingSecret" $s.name | quote }}
      key: {{ $s.accessKeyIdKey | quote }}
- name: ALIBABA_CLOUD_ACCESS_KEY_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $s.name | quote }}
      key: {{ $s.accessKeySecretKey | quote }}
{{- with $s.securityTokenKey }}
- name: ALIBABA_CLOUD_SECURITY_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $s.name | quote }}
      key: {{ . | quote }}
{{- end }}
{{- else if and (eq $c.source "ecsRamRole") $c.ecsRamRole.roleName }}
- name: ALIBABA_CLOUD_ECS_METADATA
  value: {{ $c.ecsRamRole.roleName | quote }}
{{- end }}
{{- end }}
