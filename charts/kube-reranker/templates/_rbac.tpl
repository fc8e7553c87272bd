{{/*
RBAC rules, defined once and reused by the ClusterRole (cluster-wide mode) and the per-namespace Roles.
They mirror reranker_operator/permissions.py, where each permission's reason is written down;
tests/chart/test_rbac.py asserts the rendered rules grant exactly that set in every mode: every call
the operator makes, nothing more.
*/}}

{{/* Framework, cluster-scoped: kopf lists and watches CRDs and namespaces in every mode. */}}
{{- define "kube-reranker.rules.framework.cluster" -}}
# Framework: kopf notices CRDs (ServiceMonitor, KEDA ...) installed or removed at runtime.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# Framework: kopf follows namespaces appearing and disappearing.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/* Framework, namespaced: Events in the watched namespaces. */}}
{{- define "kube-reranker.rules.framework.namespaced" -}}
# Framework: kopf and the operator post Events on the RerankerDeployment.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Framework: peering, the keep-alives by which one replica knows the others. Call with (dict "resource" ...). */}}
{{- define "kube-reranker.rules.peering" -}}
# Framework: peered replicas agree which one is active.
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  verbs: [list, watch, patch]
{{- end }}

{{/* Application: the custom resource and every child the operator renders. */}}
{{- define "kube-reranker.rules.application" -}}
# Application: watch RerankerDeployments, keep kopf's progress annotations, write their status.
- apiGroups: [kube-reranker.io]
  resources: [rerankerdeployments]
  verbs: [get, list, watch, patch]
- apiGroups: [kube-reranker.io]
  resources: [rerankerdeployments/status]
  verbs: [patch]
# Application: children's owner references set blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin (OpenShift, hardened clusters) only allows to
# whoever may update the owner's finalizers.
- apiGroups: [kube-reranker.io]
  resources: [rerankerdeployments/finalizers]
  verbs: [update]
# Application: the server pods' Deployment (followed through its rollout) and Service.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
# Application: the server pods, read to explain why they cannot be scheduled, pull the image or start.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch]
# Application: model preparation, once per recipe and cache claim: the Job (read until it is done,
# patched to add a second user as owner, listed to tell a new one which artefacts are in use; its pods'
# termination message is its result) and the shared cache claim for model.cache.storageClassName.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, patch]
# Application: optional children, created when the spec asks and pruned when it stops asking;
# ServiceMonitor, PrometheusRule and ScaledObject only where their CRDs exist.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [get, list, create, patch, delete]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, create, patch, delete]
{{- end }}
