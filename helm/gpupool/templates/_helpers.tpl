{{- define "gpupool.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gpupool.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gpupool.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gpupool.agentServiceAccount" -}}
{{- printf "%s-agent" (include "gpupool.fullname" .) -}}
{{- end -}}

{{- define "gpupool.operatorServiceAccount" -}}
{{- printf "%s-operator" (include "gpupool.fullname" .) -}}
{{- end -}}

{{- define "gpupool.operatorSelector" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "gpupool.webhookEnabled" -}}
{{- if and .Values.operator.enabled .Values.webhook.enabled -}}true{{- end -}}
{{- end -}}

{{- define "gpupool.webhookService" -}}
{{- printf "%s-webhook" (include "gpupool.fullname" .) -}}
{{- end -}}

{{- define "gpupool.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "gpupool.fullname" .) -}}
{{- end -}}

{{- define "gpupool.webhookHost" -}}
{{- printf "%s.%s.svc" (include "gpupool.webhookService" .) .Release.Namespace -}}
{{- end -}}

{{- define "gpupool.peeringName" -}}
{{- default (include "gpupool.fullname" .) .Values.operator.peeringName -}}
{{- end -}}
