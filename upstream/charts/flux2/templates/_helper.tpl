# repository: https://github.com/fluxcd-community/helm-charts
# path: charts/flux2/templates/_helper.tpl, whole and unchanged
# tag: not established (no Chart.yaml stored at this commit)
# commit: 0dc78040d94bb70fe703f70e7e84297b50680853
# note: the only version stored of the template.image helper the controller templates call. Read 2026-12-07.
# sha256: fde4d4b2f0f9bea06f4c8d99d7f1ccda888c3eb31e3b466b81d359d45a5ab417
# --- end of edgeforge header ---
{{- define "template.image" -}}
{{- if eq (substr 0 7 .tag) "sha256:" -}}
{{- printf "%s@%s" .image .tag -}}
{{- else -}}
{{- printf "%s:%s" .image .tag -}}
{{- end -}}
{{- end -}}

{{/*
Namespace for all resources to be installed into
If not defined in values file then the helm release namespace is used
By default this is not set so the helm release namespace will be used
This gets around an problem within helm discussed here
https://github.com/helm/helm/issues/5358
*/}}
{{- define "flux.namespace" -}}
    {{ .Values.namespace | default .Release.Namespace }}
{{- end -}}
