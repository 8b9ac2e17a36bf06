{{- define "custody.fullname" -}}
{{ default (printf "%s-custody" .Release.Name) .Values.fullnameOverride }}
{{- end -}}

{{- define "custody.selectorLabels" -}}
app.kubernetes.io/name: custody
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "custody.labels" -}}
{{ include "custody.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "custody.serviceAccountName" -}}
{{ if .Values.serviceAccount.create }}{{ default (include "custody.fullname" .) .Values.serviceAccount.name }}{{ else }}{{ default "default" .Values.serviceAccount.name }}{{ end }}
{{- end -}}

{{- define "custody.claimName" -}}
{{ default (printf "%s-data" (include "custody.fullname" .)) .Values.storage.filesystem.existingClaim }}
{{- end -}}
