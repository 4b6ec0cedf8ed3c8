{{- define "drover.name" -}}drover{{- end }}

{{- define "drover.fullname" -}}
{{- if eq .Release.Name "drover" }}drover{{ else }}{{ printf "%s-drover" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "drover.selectorLabels" -}}
app.kubernetes.io/name: {{ include "drover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "drover.labels" -}}
{{ include "drover.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- /* The Secret holding the key of the controller's digests of Secret contents. */}}
{{- define "drover.digestKeySecret" -}}
{{ include "drover.fullname" . }}-digest-key
{{- end }}
