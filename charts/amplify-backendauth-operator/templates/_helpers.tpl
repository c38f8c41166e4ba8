{{/* The name of every object: backendauth-operator, as in deploy/, unless fullnameOverride. */}}
{{- define "backendauth.fullname" -}}
{{- .Values.fullnameOverride | default "backendauth-operator" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object: deploy/'s, and Helm's own. */}}
{{- define "backendauth.labels" -}}
app.kubernetes.io/name: backendauth-operator
{{ include "backendauth.commonLabels" . }}
{{- end -}}

{{/* The same but app.kubernetes.io/name (not on the Namespace, as in deploy/). */}}
{{- define "backendauth.commonLabels" -}}
app.kubernetes.io/part-of: backendauth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* What the Deployment and the metrics Service select the operator's pod by. */}}
{{- define "backendauth.selectorLabels" -}}
app.kubernetes.io/name: backendauth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount's subject, in the release namespace. */}}
{{- define "backendauth.subjects" -}}
- kind: ServiceAccount
  name: {{ include "backendauth.fullname" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
The operator's rights where it watches BackendAuths: only what the code does (deploy/README.md,
"What the operator may do"; tests/test_deploy.py keeps deploy/'s list exact, tests/test_chart.py
keeps this one equal to it).
*/}}
{{- define "backendauth.rules" -}}
# Kopf: list+watch; kube/client.py: get and patch (pending marker, the steps' annotations and finalizer).
- apiGroups: [amplifybackend.gitops.dev]
  resources: [backendauths]
  verbs: [get, list, watch, patch]
# kube/client.py patch_status: each step's outcome goes to the status subresource.
- apiGroups: [amplifybackend.gitops.dev]
  resources: [backendauths/status]
  verbs: [patch]
# Kopf: kopf.event/info/warn post core v1 Events in the object's namespace.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# kube/client.py read_secret_key: clientSecretRef / privateKeyRef; Kopf: list+watch for rotation.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
# kube/client.py write_config_map: spec.outputs.configMapName; runtime/import_reads.py: an id of spec.import
# read from a configMapKeyRef.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
{{- end -}}

{{/* repository@digest when a digest is given, else repository:tag (default: the appVersion). */}}
{{- define "backendauth.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}
