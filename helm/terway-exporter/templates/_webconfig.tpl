{{/*
--web.config.file (exporter-toolkit's format): TLS, client certificates, basic auth, headers.
Secrets are mounted as whole directories, never with subPath: the kubelet then swaps their files when
the Secret changes (a cert-manager renewal), and the exporter re-reads them without a restart.
*/}}

{{- define "terway-exporter.webConfigPath" -}}/etc/terway-exporter/web/web-config.yml{{- end }}
{{- define "terway-exporter.tlsDir" -}}/etc/terway-exporter/tls{{- end }}
{{- define "terway-exporter.clientCADir" -}}/etc/terway-exporter/client-ca{{- end }}

{{/* "true" when the exporter serves HTTPS. */}}
{{- define "terway-exporter.webTLS" -}}
{{- if and .Values.webConfig.enabled .Values.webConfig.tls.enabled }}true{{ end }}
{{- end }}

{{/* "true" when every client must present a certificate: the kubelet's HTTPS probes cannot. */}}
{{- define "terway-exporter.webClientCertRequired" -}}
{{- if and (include "terway-exporter.webTLS" .) (has .Values.webConfig.tls.clientAuthType (list "RequireAnyClientCert" "RequireAndVerifyClientCert")) }}true{{ end }}
{{- end }}

{{- define "terway-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "terway-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* The web configuration file the chart writes from values (when webConfig.existingSecret is empty). */}}
{{- define "terway-exporter.webConfigFile" -}}
{{- $w := .Values.webConfig -}}
{{- if and $w.tls.enabled (not $w.tls.secretName) }}
{{- fail "webConfig.tls.secretName: name the kubernetes.io/tls Secret (tls.crt, tls.key) to serve, e.g. a cert-manager Certificate's, or set webConfig.tls.enabled=false" }}
{{- end }}
{{- if not (or $w.tls.enabled $w.basicAuthUsers $w.headers) }}
{{- fail "webConfig.enabled: nothing to configure: set webConfig.tls.secretName, webConfig.basicAuthUsers or webConfig.headers, or give webConfig.existingSecret" }}
{{- end }}
{{- $file := dict }}
{{- if $w.tls.enabled }}
{{- $tlsDir := include "terway-exporter.tlsDir" . }}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" $tlsDir) "key_file" (printf "%s/tls.key" $tlsDir) "client_auth_type" $w.tls.clientAuthType "min_version" $w.tls.minVersion }}
{{- if not (has $w.tls.clientAuthType (list "NoClientCert" "RequestClientCert")) }}
{{- if $w.tls.clientCASecretName }}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" (include "terway-exporter.clientCADir" .)) }}
{{- else }}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" $tlsDir) }}
{{- end }}
{{- end }}
{{- $_ := set $file "tls_server_config" $tls }}
{{- end }}
{{- with $w.basicAuthUsers }}
{{- $_ := set $file "basic_auth_users" . }}
{{- end }}
{{- with $w.headers }}
{{- $_ := set $file "http_server_config" (dict "headers" .) }}
{{- end }}
{{- toYaml $file }}
{{- end }}

{{/*
A probe from values, adjusted to the web configuration: scheme HTTPS with TLS (the kubelet does not
verify the certificate), and a tcpSocket probe when client certificates are required. /healthz and
/readyz never ask for basic auth.
*/}}
{{- define "terway-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and $probe.httpGet (include "terway-exporter.webClientCertRequired" .root) }}
{{- $_ := set $probe "tcpSocket" (dict "port" $probe.httpGet.port) }}
{{- $_ := unset $probe "httpGet" }}
{{- else if and $probe.httpGet (include "terway-exporter.webTLS" .root) (not $probe.httpGet.scheme) }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* The ServiceMonitor endpoint's tlsConfig: serviceMonitor.tlsConfig, or the TLS Secret's ca.crt. */}}
{{- define "terway-exporter.serviceMonitorTLS" -}}
{{- $sm := .Values.serviceMonitor }}
{{- $w := .Values.webConfig }}
{{- if $sm.tlsConfig }}
{{- toYaml $sm.tlsConfig }}
{{- else if include "terway-exporter.webClientCertRequired" . }}
{{- fail (printf "serviceMonitor.tlsConfig: the exporter requires client certificates (webConfig.tls.clientAuthType=%s): give Prometheus one (cert, keySecret) and the CA of the exporter's certificate (ca)" $w.tls.clientAuthType) }}
{{- else if not $w.tls.secretName }}
{{- fail "serviceMonitor.tlsConfig: tell Prometheus how to verify the exporter's certificate (ca, serverName); the chart can only default it from webConfig.tls.secretName" }}
{{- else if and $sm.namespace (ne $sm.namespace .Release.Namespace) }}
{{- fail (printf "serviceMonitor.tlsConfig: the ServiceMonitor is in namespace %s, where the TLS Secret %s is not: give tlsConfig.ca from a Secret or ConfigMap there" $sm.namespace $w.tls.secretName) }}
{{- else -}}
ca:
  secret:
    name: {{ $w.tls.secretName | quote }}
    key: ca.crt
serverName: {{ printf "%s.%s.svc" (include "terway-exporter.fullname" .) .Release.Namespace | quote }}
{{- end }}
{{- end }}
