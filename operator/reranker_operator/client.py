"""A thin typed Kubernetes client: get, create, apply, delete, list by selector, patch status.

Built on the official `kubernetes` client's configuration and HTTP layer (in-cluster service
account or kubeconfig, token refresh, TLS), with URLs from kinds.py. Calls are blocking, so
each runs in a worker thread and the handlers stay async. Handlers never build URLs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Final

import kopf
import kubernetes
import urllib3

from reranker_operator import naming
from reranker_operator.config import IMAGE_TAG, OperatorConfig
from reranker_operator.kinds import ApiResource

REQUEST_TIMEOUT_S: Final = 30.0
TRANSIENT_STATUSES: Final = frozenset({409, 429})
JSON: Final = "application/json"
MERGE_PATCH: Final = "application/merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"


class ApiError(Exception):
    """The API server refused a request (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying: conflicts, throttling, server-side failures and network errors."""
        return self.status in TRANSIENT_STATUSES or self.status >= 500 or self.status == 0


def load_configuration(config: OperatorConfig) -> kubernetes.client.Configuration:
    """In a pod: the service account (with token refresh); elsewhere: the kubeconfig."""
    configuration = kubernetes.client.Configuration()
    if config.in_cluster:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    else:
        kubernetes.config.load_kube_config(config_file=config.kubeconfig, client_configuration=configuration)
    return configuration


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """The same credentials for kopf's own API calls, so both clients always talk to one cluster."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, token = (None, None)
    if header:
        parts = header.split(" ", 1)
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


class KubeClient:
    def __init__(
        self, configuration: kubernetes.client.Configuration, *, timeout_s: float = REQUEST_TIMEOUT_S
    ):
        self._api = kubernetes.client.ApiClient(configuration)
        self._api.user_agent = f"{naming.MANAGED_BY}/{IMAGE_TAG}"
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._api.close()

    async def get(self, resource: ApiResource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", resource.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, resource: ApiResource, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"].get("namespace")
        return await self._call(
            "POST", resource.path(namespace), body=body, query={"fieldManager": naming.FIELD_MANAGER}
        )

    async def apply(self, resource: ApiResource, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns exactly the fields it sends and takes them back if changed."""
        meta = body["metadata"]
        return await self._call(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"]),
            body=body,
            content_type=APPLY_PATCH,
            query={"fieldManager": naming.FIELD_MANAGER, "force": "true"},
        )

    async def set_owners(
        self, resource: ApiResource, namespace: str | None, name: str, owners: list[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Replace an object's ownerReferences (a merge patch sends the whole list: no entry is lost)."""
        body = {"metadata": {"ownerReferences": [dict(owner) for owner in owners]}}
        return await self._call("PATCH", resource.path(namespace, name), body=body, content_type=MERGE_PATCH)

    async def merge_patch(
        self, resource: ApiResource, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch: the lists it names are replaced whole, the rest of the object is kept."""
        return await self._call("PATCH", resource.path(namespace, name), body=body, content_type=MERGE_PATCH)

    async def delete(self, resource: ApiResource, namespace: str | None, name: str) -> None:
        try:
            await self._call(
                "DELETE", resource.path(namespace, name), body={"propagationPolicy": "Background"}
            )
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def list(
        self, resource: ApiResource, namespace: str | None, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        result = await self._call("GET", resource.path(namespace), query={"labelSelector": label_selector})
        # Filter again on our side: cheap, and it keeps the contract with servers that ignore selectors.
        return [
            item
            for item in result.get("items") or ()
            if all((item.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in selector.items())
        ]

    async def patch_status(
        self,
        resource: ApiResource,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Another object's status, through its status subresource (our own goes through kopf's patch).

        With `resource_version`, the API server refuses (409) if the object changed since it was read.
        """
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        path = resource.path(namespace, name, "status")
        return await self._call("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def serves(self, resource: ApiResource) -> bool:
        """Whether the API server serves a kind: its CRD is installed and established (API discovery)."""
        try:
            discovery = await self._call("GET", resource.group_version_path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return any(item.get("name") == resource.plural for item in discovery.get("resources") or ())

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self._request, method, path, body, content_type, query or {})

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        content_type: str,
        query: Mapping[str, str],
    ) -> dict[str, Any]:
        method, url, headers, payload, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query.items()),
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(method, url, headers, payload, _request_timeout=self._timeout_s)
            response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, type(exc).__name__, str(exc)) from exc
        except kubernetes.client.exceptions.ApiException as exc:
            raise ApiError(exc.status or 0, exc.reason or "", str(exc)) from exc
        try:
            data = json.loads(response.data) if response.data else {}
        except ValueError:
            data = {"message": response.data[:200].decode(errors="replace")}
        if not 200 <= response.status < 300:
            raise ApiError(
                response.status, data.get("reason") or "", data.get("message") or response.reason or ""
            )
        return data
