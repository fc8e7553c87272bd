{{/*
Names, labels and the few values that several templates derive the same way. Every name is cut
to 63 characters because Kubernetes label values and DNS-1123 names stop there.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kube-reranker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of every object; a release already named after the chart is not repeated. */}}
{{- define "kube-reranker.fullname" -}}
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

{{/* chart-version, as the helm.sh/chart label wants it. */}}
{{- define "kube-reranker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Namespace of the operator and its own objects. */}}
{{- define "kube-reranker.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart renders. */}}
{{- define "kube-reranker.commonLabels" -}}
helm.sh/chart: {{ include "kube-reranker.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-reranker
{{- end }}

{{/* Labels on the operator and its own objects. */}}
{{- define "kube-reranker.labels" -}}
{{ include "kube-reranker.commonLabels" . }}
app.kubernetes.io/name: {{ include "kube-reranker.name" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector labels: name + instance, stable across upgrades (Deployment selectors are immutable). */}}
{{- define "kube-reranker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-reranker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "kube-reranker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-reranker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from (list <values.image> <appVersion>): repository:tag, with @digest when one is
set, so the kubelet pulls exactly that image and the tag stays readable. The tag defaults to appVersion.
*/}}
{{- define "kube-reranker.image" -}}
{{- $image := index . 0 }}
{{- if and $image.digest (contains "@" (toString $image.tag)) }}
{{- fail (printf "image %s: set its digest either in the tag (tag@sha256:...) or in digest, not both" $image.repository) }}
{{- end }}
{{- $reference := printf "%s:%s" $image.repository (default (index . 1) $image.tag) }}
{{- if $image.digest }}{{ $reference = printf "%s@%s" $reference $image.digest }}{{ end }}
{{- $reference }}
{{- end }}

{{/* Operator image reference. */}}
{{- define "kube-reranker.operatorImage" -}}
{{- include "kube-reranker.image" (list .Values.operator.image .Chart.AppVersion) }}
{{- end }}

{{/*
Server image reference: the one place the default server image is decided. The operator gets it as
RERANKER_OPERATOR_SERVER_IMAGE and the helm test pod runs it, so both always agree.
*/}}
{{- define "kube-reranker.serverImage" -}}
{{- include "kube-reranker.image" (list .Values.server.image .Chart.AppVersion) }}
{{- end }}

{{/* GPU server image reference (backend: gpu). */}}
{{- define "kube-reranker.serverGpuImage" -}}
{{- include "kube-reranker.image" (list .Values.server.gpuImage .Chart.AppVersion) }}
{{- end }}

{{/* The image model preparation Jobs and initContainers run (reranker-server prepare, with torch). */}}
{{- define "kube-reranker.exportImage" -}}
{{- include "kube-reranker.image" (list .Values.server.exportImage .Chart.AppVersion) }}
{{- end }}

{{/* True (non-empty) when the operator runs more than one replica and so needs kopf peering. */}}
{{- define "kube-reranker.peeringEnabled" -}}
{{- if gt (int .Values.operator.replicas) 1 }}true{{ end }}
{{- end }}

{{/* Name of the kopf peering object the replicas coordinate through. */}}
{{- define "kube-reranker.peeringName" -}}
{{- default (include "kube-reranker.fullname" .) .Values.peering.name }}
{{- end }}

{{/* True (non-empty) when the operator watches a list of namespaces instead of the whole cluster. */}}
{{- define "kube-reranker.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* The RerankerDeployment `helm test` queries: helmTest.target, else the example. */}}
{{- define "kube-reranker.testTarget" -}}
{{- default .Values.example.name .Values.helmTest.target }}
{{- end }}

{{/* Namespace of that RerankerDeployment. */}}
{{- define "kube-reranker.testTargetNamespace" -}}
{{- default (include "kube-reranker.exampleNamespace" .) .Values.helmTest.namespace }}
{{- end }}

{{/*
Namespace the example RerankerDeployment goes to: example.namespace, else the first watched namespace
(the operator ignores the others), else the release namespace.
*/}}
{{- define "kube-reranker.exampleNamespace" -}}
{{- if .Values.example.namespace }}
{{- .Values.example.namespace }}
{{- else if .Values.watchNamespaces }}
{{- first .Values.watchNamespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* fullname-suffix, with the full name cut so the result still fits 63 characters. Call with (list . "suffix"). */}}
{{- define "kube-reranker.suffixedName" -}}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "kube-reranker.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}
