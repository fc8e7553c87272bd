"""kopf handlers only: read the event, call reconcile/status, write status, translate errors.

Level-based: create, update, resume and a periodic resync all run the same idempotent
reconcile; a second timer reads the SLO state from Prometheus. The operator's own status goes
through kopf's `patch`; the Deployment and pod watchers write the CR's status through its
status subresource.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

import kopf

from reranker_operator import api, config, kinds, metrics, naming, slo, status, tenancy
from reranker_operator.client import ApiError, KubeClient, connection_info, load_configuration
from reranker_operator.plan import Problem
from reranker_operator.prometheus import PrometheusClient, PrometheusError
from reranker_operator.reconcile import ChildConflictError, Outcome, observe, reconcile
from reranker_operator.resources.common import ChildRef

# The timer only checks whether a resync is due; RERANKER_OPERATOR_RESYNC_SECONDS decides when.
RESYNC_CHECK_S: Final = 10.0
RESYNC_IDLE_S: Final = 30.0
# The SLO is read as often as an autoscaler polls, but only once the spec has been stable for a
# minute: right after a change, the latency in Prometheus' window is the old pods'.
SLO_CHECK_S: Final = 30.0
SLO_IDLE_S: Final = 60.0
REJECTED_RETRY_S: Final = 300.0
MAX_BACKOFF_S: Final = 300.0


@kopf.on.startup()
async def operator_configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_config = config.load()
    # kopf's bookkeeping lives in annotations under our group: status is our API, not kopf's scratchpad.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=naming.ANNOTATION_PREFIX)
    # The resync timer makes kopf keep a finalizer on each CR (to stop the timer); name it after us.
    settings.persistence.finalizer = f"{naming.GROUP}/finalizer"
    # Log lines become Kubernetes Events only for problems; success is reported by our own events.
    settings.posting.level = logging.WARNING
    # Events are attributed to the operator, not to "kopf".
    settings.posting.reporting_component = naming.MANAGED_BY
    # Servers end watches after this long, so a silently dead connection is replaced in bounded time.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # A stuck request must not block a handler forever; the handler retries with backoff.
    settings.networking.request_timeout = 60
    # Peering (name, standalone, cluster-wide or namespaced) comes from kopf's CLI arguments, which
    # `reranker-operator run` derives from the same settings (cli.kopf_argv).
    # Keep watching CRDs and namespaces, so a CRD installed or a namespace created later is picked up.
    settings.scanning.disabled = False
    memo.config = operator_config
    memo.client = KubeClient(load_configuration(operator_config))
    memo.metrics = metrics.OperatorMetrics()
    memo.metrics_runner = None
    if operator_config.metrics_port is not None:
        memo.metrics_runner = await metrics.serve(memo.metrics, operator_config.metrics_port)
    memo.prometheus = None
    if operator_config.prometheus_url is not None:
        memo.prometheus = PrometheusClient(operator_config.prometheus_url)


@kopf.on.login()
def operator_login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(load_configuration(memo.config))


@kopf.on.cleanup()
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.client.close()
    if memo.metrics_runner is not None:
        await memo.metrics_runner.cleanup()
    if memo.prometheus is not None:
        await memo.prometheus.close()


# A stable id: kopf keys its progress annotations by it, so renaming the function resets nothing.
@kopf.on.resume(naming.GROUP, naming.VERSION, naming.PLURAL, id="reconcile")
@kopf.on.create(naming.GROUP, naming.VERSION, naming.PLURAL, id="reconcile")
@kopf.on.update(naming.GROUP, naming.VERSION, naming.PLURAL, id="reconcile")
async def rerankerdeployment_reconcile(
    body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any
) -> None:
    try:
        parsed = _validated(body, spec, memo)
    except api.InvalidSpecError as exc:
        raise _invalid(body, patch, memo, exc) from None
    await _reconcile(body, parsed, patch, memo, retry)


@kopf.timer(
    naming.GROUP, naming.VERSION, naming.PLURAL, id="resync", interval=RESYNC_CHECK_S, idle=RESYNC_IDLE_S
)
async def rerankerdeployment_resync(
    body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any
) -> None:
    """Undo drift (a deleted Service, an edited Deployment); writes nothing when nothing drifted.

    While a preparation Job runs, every tick reconciles: the Deployment rolls as soon as it succeeded.
    """
    due = _now_monotonic() - memo.get("reconciled_at", -math.inf) >= memo.config.resync_seconds
    if not due and not _preparing(body):
        return
    try:
        parsed = _validated(body, spec, memo)
    except api.InvalidSpecError:
        return  # the reconcile handler has reported it; the timer must not repeat the Event
    await _reconcile(body, parsed, patch, memo, retry)


@kopf.timer(naming.GROUP, naming.VERSION, naming.PLURAL, id="slo", interval=SLO_CHECK_S, idle=SLO_IDLE_S)
async def rerankerdeployment_slo(
    body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """P95 and the warm-up's k-cap latency from Prometheus into status (SLOMet, SLOFeasible).

    Without a Prometheus URL there is nothing to read. A failed query becomes an Unknown
    condition saying why; the next tick tries again (no retry loop of its own).
    """
    if memo.prometheus is None:
        return
    try:
        parsed = _validated(body, spec, memo)
    except api.InvalidSpecError:
        return  # the reconcile handler has reported it
    ref = ChildRef(cr_name=body.metadata["name"], namespace=body.metadata["namespace"])
    try:
        update = slo.measured(parsed, await memo.prometheus.read_slo(ref), _generation(body))
    except PrometheusError as exc:
        update = slo.unmeasured(str(exc), _generation(body))
    _write_status(body, patch, update)


@kopf.on.event(
    kinds.DEPLOYMENT.group,
    kinds.DEPLOYMENT.version,
    kinds.DEPLOYMENT.plural,
    labels={naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
)
async def deployment_status_changed(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    owner = _owner_reference(body)
    if owner is not None and namespace is not None:
        await _refresh(memo.client, namespace, owner["name"], owner["uid"], logger)


@kopf.on.event(
    kinds.POD.group,
    kinds.POD.version,
    kinds.POD.plural,
    labels={naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
)
async def pod_status_changed(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Pods explain what the Deployment cannot: no GPU node, no image, a crash loop."""
    cr_name = body.metadata.get("labels", {}).get(naming.LABEL_INSTANCE)
    if cr_name and namespace is not None:
        await _refresh(memo.client, namespace, cr_name, None, logger)


async def _refresh(
    client: KubeClient, namespace: str, cr_name: str, uid: str | None, logger: kopf.Logger
) -> None:
    """Re-observe the Deployment and pods of one RerankerDeployment and patch its status if it changed."""
    try:
        cr = await client.get(kinds.RERANKER, namespace, cr_name)
        if cr is None or (uid is not None and cr["metadata"].get("uid") != uid):
            return
        observed = await observe(client, ChildRef(cr_name=cr_name, namespace=namespace))
        previous = cr.get("status") or {}
        update = status.refreshed(
            deployment=observed.deployment, pods=observed.pods, generation=previous.get("observedGeneration")
        )
        changes = status.status_patch(previous, update.applied_to(previous, _now()))
        if changes:
            version = cr["metadata"].get("resourceVersion")
            await client.patch_status(kinds.RERANKER, namespace, cr_name, changes, resource_version=version)
    except ApiError as exc:
        # Event handlers are not retried (a 409 means another writer came first); the next event
        # or the resync writes the status again from a fresh read.
        logger.warning(f"Could not update the status of {cr_name} from its Deployment and pods: {exc}")


def _validated(body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo) -> api.RerankerDeploymentSpec:
    """The parsed spec, once it is valid and within the cluster admin's tenancy rules."""
    try:
        api.check_name(body.metadata["name"])
    except ValueError as exc:
        raise api.InvalidSpecError(f"metadata.name: {exc}") from None
    parsed = api.parse_spec(spec)
    tenancy.check(parsed, memo.config.tenancy)
    return parsed


async def _reconcile(
    body: kopf.Body, spec: api.RerankerDeploymentSpec, patch: kopf.Patch, memo: kopf.Memo, retry: int
) -> None:
    started = _now_monotonic()
    try:
        outcome = await reconcile(memo.client, owner=body, spec=spec, config=memo.config)
    except ChildConflictError as exc:
        raise _rejected(body, patch, memo, Problem(status.CHILD_CONFLICT, str(exc)), started) from None
    except ApiError as exc:
        if not exc.transient:
            problem = Problem("ApiRejected", f"the API server rejected a child: {exc}")
            raise _rejected(body, patch, memo, problem, started) from None
        memo.metrics.reconciled("retrying", _now_monotonic() - started)
        raise kopf.TemporaryError(f"Transient API error, retrying: {exc}", delay=_backoff(retry)) from exc
    _report(body, patch, memo, spec, outcome)
    memo.reconciled_at = _now_monotonic()
    memo.metrics.reconciled("success", memo.reconciled_at - started)


def _report(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, spec: api.RerankerDeploymentSpec, outcome: Outcome
) -> None:
    update = status.reconciled(
        spec=spec,
        name=body.metadata["name"],
        namespace=body.metadata["namespace"],
        generation=_generation(body),
        plan=outcome.plan,
        problems=(),
        deployment=outcome.observed.deployment,
        pods=outcome.observed.pods,
        preparation=outcome.preparation,
    )
    _write_status(body, patch, update)
    for change in outcome.changes:
        memo.metrics.changed(change.action, change.kind)
    if outcome.changes:
        kopf.info(body, reason="Applied", message="; ".join(str(change) for change in outcome.changes))


def _invalid(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, exc: api.InvalidSpecError
) -> kopf.PermanentError:
    """An invalid or forbidden spec: say what to fix in status and an Event, never retry this generation."""
    message = str(exc)
    reason = (
        tenancy.POLICY_VIOLATION if isinstance(exc, tenancy.PolicyViolationError) else status.INVALID_SPEC
    )
    problem = Problem(reason, message)
    _write_status(
        body, patch, status.rejected(problem=problem, generation=_generation(body), spec_rejected=True)
    )
    kopf.warn(body, reason=reason, message=message)
    memo.metrics.reconciled("invalid_spec", 0.0)
    return kopf.PermanentError(f"Invalid spec, fix it and the operator retries: {message}")


def _rejected(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, problem: Problem, started: float
) -> kopf.TemporaryError:
    """A problem a quick retry cannot fix: say so in status and an Event, and retry slowly."""
    update = status.rejected(problem=problem, generation=_generation(body), spec_rejected=False)
    _write_status(body, patch, update)
    kopf.warn(body, reason=problem.reason, message=problem.message)
    memo.metrics.reconciled("rejected", _now_monotonic() - started)
    return kopf.TemporaryError(problem.message, delay=REJECTED_RETRY_S)


def _write_status(body: kopf.Body, patch: kopf.Patch, update: status.StatusUpdate) -> None:
    """Fields by merge patch; conditions by a patch function kopf applies to the freshest object."""
    for key, value in status.status_patch(body.status, update.fields).items():
        patch.status[key] = value
    patch.fns.append(functools.partial(status.set_conditions, update=update, now=_now()))


def _preparing(body: kopf.Body) -> bool:
    conditions = (body.status or {}).get("conditions") or ()
    return any(c.get("type") == status.MODEL_READY and c.get("reason") == "Preparing" for c in conditions)


def _owner_reference(body: kopf.Body) -> Mapping[str, Any] | None:
    for ref in body.metadata.get("ownerReferences") or ():
        if ref.get("kind") == naming.KIND and ref.get("apiVersion") == naming.API_VERSION:
            return ref
    return None


def _generation(body: kopf.Body) -> int | None:
    return body.metadata.get("generation")


def _backoff(retry: int) -> float:
    """1 s, 2 s, 4 s ... capped at 5 minutes: quick recovery from blips, no hot loop in outages."""
    return min(MAX_BACKOFF_S, 2.0**retry)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_monotonic() -> float:
    """The event loop's clock: monotonic, and the one kopf's timers (and looptime in tests) follow."""
    return asyncio.get_running_loop().time()
