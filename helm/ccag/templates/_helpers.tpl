{{/* Names. */}}
{{- define "ccag.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ccag.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ccag.controlplane.fullname" -}}{{ include "ccag.fullname" . }}-controlplane{{- end -}}
{{- define "ccag.dataplane.fullname" -}}{{ include "ccag.fullname" . }}-dataplane{{- end -}}
{{/* The headless Service the data planes dial: one address per ready replica. */}}
{{- define "ccag.controlplane.grpcHost" -}}{{ include "ccag.controlplane.fullname" . }}-grpc.{{ .Release.Namespace }}.svc{{- end -}}

{{/* Labels. */}}
{{- define "ccag.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "ccag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ccag
{{- end -}}

{{- define "ccag.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ccag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ccag.controlplane.selectorLabels" -}}
{{ include "ccag.selectorLabels" . }}
app.kubernetes.io/component: controlplane
{{- end -}}

{{- define "ccag.dataplane.selectorLabels" -}}
{{ include "ccag.selectorLabels" . }}
app.kubernetes.io/component: dataplane
{{- end -}}

{{/* The image, its tag defaulting to the chart's appVersion. */}}
{{- define "ccag.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ccag.controlplane.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create -}}
{{- default (include "ccag.controlplane.fullname" .) .Values.controlPlane.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controlPlane.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ccag.dataplane.serviceAccountName" -}}
{{- if .Values.dataplane.serviceAccount.create -}}
{{- default (include "ccag.dataplane.fullname" .) .Values.dataplane.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.dataplane.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secrets: the chart's own Secret, or the operator's. */}}
{{- define "ccag.secretName" -}}
{{- default (include "ccag.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "ccag.createSecret" -}}
{{- if not .Values.secrets.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* The DATABASE_URL reference; fails without a database. */}}
{{- define "ccag.databaseUrlRef" -}}
{{- if .Values.database.existingSecret -}}
name: {{ .Values.database.existingSecret }}
key: {{ .Values.database.existingSecretKey }}
{{- else if or .Values.database.url .Values.secrets.existingSecret -}}
name: {{ include "ccag.secretName" . }}
key: {{ .Values.secrets.keys.databaseUrl }}
{{- else -}}
{{- fail "a PostgreSQL database is required: set database.url, database.existingSecret, or secrets.existingSecret (with the key secrets.keys.databaseUrl). Several control-plane replicas share it." -}}
{{- end -}}
{{- end -}}

{{/* The public origin (CCAG_PUBLIC_URL): given, the ingress's, or the
     port-forward of NOTES.txt (a trial only). */}}
{{- define "ccag.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- if .Values.ingress.tls -}}https://{{ .Values.ingress.host }}{{- else -}}http://{{ .Values.ingress.host }}{{- end -}}
{{- else -}}
http://127.0.0.1:8080
{{- end -}}
{{- end -}}

{{/* The data plane's drain timeout in ms: given, or derived from the grace period. */}}
{{- define "ccag.dataplane.drainTimeoutMs" -}}
{{- $dp := .Values.dataplane -}}
{{- $derived := mul (sub (sub (int $dp.terminationGracePeriodSeconds) (int $dp.preStopSleepSeconds)) 15) 1000 -}}
{{- $ms := $derived -}}
{{- if not (kindIs "invalid" $dp.drainTimeoutMs) -}}{{- $ms = int $dp.drainTimeoutMs -}}{{- end -}}
{{- if lt (int $ms) 1000 -}}
{{- fail (printf "dataplane: the drain timeout (%d ms) must be at least 1000 ms: raise terminationGracePeriodSeconds or lower preStopSleepSeconds" (int $ms)) -}}
{{- end -}}
{{- if ge (add (mul (int $dp.preStopSleepSeconds) 1000) (int $ms)) (mul (int $dp.terminationGracePeriodSeconds) 1000) -}}
{{- fail (printf "dataplane: preStopSleepSeconds (%d s) plus drainTimeoutMs (%d ms) must end before terminationGracePeriodSeconds (%d s), or the kubelet kills streams mid-drain" (int $dp.preStopSleepSeconds) (int $ms) (int $dp.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- $ms -}}
{{- end -}}

{{/* Plain name: value environment, sorted. */}}
{{- define "ccag.plainEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* A checksum of the values behind the chart's Secret, so pods restart when they change. */}}
{{- define "ccag.secretChecksum" -}}
{{- $v := dict "secrets" .Values.secrets "database" .Values.database "oidc" .Values.oidc -}}
{{- toJson $v | sha256sum -}}
{{- end -}}

{{- /* Egress both planes need: DNS, HTTPS out, the AWS credential agents,
       and the operator's extra rules. */}}
{{- define "ccag.commonEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if .egress.https }}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
    - ipBlock:
        cidr: ::/0
  ports:
    - port: 443
      protocol: TCP
{{- end }}
{{- if .egress.awsCredentialAgents }}
- to:
    - ipBlock:
        cidr: 169.254.170.23/32
    - ipBlock:
        cidr: 169.254.169.254/32
    - ipBlock:
        cidr: fd00:ec2::23/128
    - ipBlock:
        cidr: fd00:ec2::254/128
  ports:
    - port: 80
      protocol: TCP
{{- end }}
{{- with .egress.extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}
