{{/*
RBAC rules, defined once and reused by the ClusterRole (cluster-wide mode) and the per-namespace Roles.
tests/chart/test_rbac.py asserts that together they grant exactly what reranker_operator.permissions
declares: every call the operator makes, nothing more.
*/}}

{{/* Cluster-scoped reads kopf needs in every mode: namespaces and CRDs are not namespaced objects. */}}
{{- define "kube-reranker.rules.framework" -}}
# Framework: runtime observation of CRDs (ServiceMonitor, KEDA appearing later) and namespaces.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/* Framework: peering, the keep-alives by which one replica knows the others. */}}
{{- define "kube-reranker.rules.peering" -}}
# Framework: knowing which other operator replicas are running (kopf peering).
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  verbs: [list, watch, patch]
{{- end }}

{{/* Application: the custom resource and every child the operator renders. */}}
{{- define "kube-reranker.rules.application" -}}
# Application: watching the custom resource, its progress annotations and its status.
- apiGroups: [kube-reranker.io]
  resources: [rerankerdeployments]
  verbs: [get, list, watch, patch]
- apiGroups: [kube-reranker.io]
  resources: [rerankerdeployments/status]
  verbs: [get, patch]
# Application: events about what the operator did, posted on the custom resource.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Application: the children of each RerankerDeployment, applied idempotently and pruned.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# Application: optional children, created only when their CRDs exist in the cluster.
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}
