"""`reranker-operator run | render -f cr.yaml | crd | adapter-values`.

`run` builds the settings from the environment (the chart sets RERANKER_OPERATOR_*) and
starts kopf with the matching arguments; `render` prints what the operator would apply for
a manifest, with no cluster; `crd` prints the generated CustomResourceDefinition;
`adapter-values` prints the prometheus-adapter rules of the prometheus-adapter metrics path.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import kopf.cli
import kubernetes
import yaml

from reranker_operator import api, config, crdgen, naming, tenancy
from reranker_operator.client import load_configuration
from reranker_operator.plan import Capabilities, owned, plan_children
from reranker_operator.resources.adapter import render_adapter_values
from reranker_operator.resources.common import ChildRef

HANDLERS_MODULE = "reranker_operator.handlers"
# kopf keeps priorities as JSON integers in the peering object; stay within a signed 32-bit integer.
MAX_PRIORITY: Final = 2**31 - 1


class RenderError(ValueError):
    """A manifest that cannot be rendered; the message names the file and the problem."""


def kopf_argv(
    settings: config.OperatorConfig,
    *,
    verbose: bool = False,
    debug: bool = False,
    liveness: str | None = None,
) -> list[str]:
    """kopf's CLI arguments for these settings: what `run` executes and what the smoke test runs."""
    argv = [
        "run",
        "--module",
        HANDLERS_MODULE,
        "--liveness",
        liveness or settings.liveness_endpoint,
        "--log-format",
        "json" if settings.log_format == "json" else "full",
    ]
    if settings.clusterwide:
        argv.append("--all-namespaces")
    for namespace in settings.namespaces:
        argv += ["--namespace", namespace]
    if settings.peering:
        argv += ["--peering", settings.peering, "--priority", str(peering_priority(settings.pod_id or ""))]
    else:
        argv.append("--standalone")
    if verbose:
        argv.append("--verbose")
    if debug:
        argv.append("--debug")
    return argv


def peering_priority(pod_id: str) -> int:
    """A priority of 1 .. 2**31-1 derived from the replica's name, so peers practically never share one.

    kopf lets the peer with the highest priority work and pauses the rest; peers with EQUAL
    priorities pause all of them ("Pausing all operators, including self"), which is what every
    replica left at kopf's default priority 0 does. A hash of POD_ID (the pod name, unique
    among live pods) rather than a random draw keeps one pod at one priority across restarts of
    its process, so the active replica does not change hands for nothing.
    """
    digest = hashlib.sha256(pod_id.encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % MAX_PRIORITY


def render(
    documents: Iterable[Any], settings: config.OperatorConfig, capabilities: Capabilities
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every child the operator would apply for the RerankerDeployments in `documents`, plus warnings."""
    objects: list[dict[str, Any]] = []
    warnings: list[str] = []
    problems: list[str] = []
    for document in documents:
        if document is None:
            continue
        if document.get("apiVersion") != naming.API_VERSION or document.get("kind") != naming.KIND:
            raise RenderError(f"expected {naming.API_VERSION} {naming.KIND}, got {document.get('kind')}")
        meta = {"namespace": "default", **(document.get("metadata") or {})}
        name = meta.get("name", "")
        found = []
        try:
            api.check_name(name)
        except ValueError as exc:
            found.append(f"metadata.name: {exc}")
        try:
            spec = api.parse_spec(document.get("spec") or {})
            tenancy.check(spec, settings.tenancy)
        except ValueError as exc:
            found.append(str(exc))
        if found:
            problems.append(f"{naming.KIND} {name or '<unnamed>'}: {'; '.join(found)}")
            continue
        wanted = capabilities
        if spec.autoscaling.enabled and spec.autoscaling.metrics_source == "keda":
            wanted = Capabilities(
                capabilities.service_monitors, capabilities.prometheus_rules, scaled_objects=True
            )
        plan = plan_children(spec, ChildRef(cr_name=name, namespace=meta["namespace"]), settings, wanted)
        warnings += [f"{name}: {problem.message}" for problem in plan.problems]
        # Owner references need the live object's uid; a manifest from disk usually has none.
        rendered = (*plan.shared, *plan.children)
        objects += owned(rendered, {**document, "metadata": meta}) if meta.get("uid") else list(rendered)
    if problems:
        raise RenderError("\n".join(problems))
    return objects, warnings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reranker-operator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the operator (settings from RERANKER_OPERATOR_* variables)",
        epilog=config.settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log handler progress")
    run.add_argument("--debug", action="store_true", help="log every API request")
    show = commands.add_parser("render", help="print the objects the operator would apply, with no cluster")
    show.add_argument(
        "-f",
        "--filename",
        action="extend",
        nargs="+",
        required=True,
        type=Path,
        help="RerankerDeployment YAML files",
    )
    show.add_argument(
        "--with-prometheus-operator", action="store_true", help="assume ServiceMonitor and PrometheusRule"
    )
    show.add_argument("--with-keda", action="store_true", help="assume KEDA's ScaledObject is served")
    show.add_argument(
        "--prometheus-url", help="Prometheus URL for KEDA triggers (default: the operator's setting)"
    )
    commands.add_parser("crd", help="print the generated CustomResourceDefinition")
    commands.add_parser(
        "adapter-values",
        help="print prometheus-adapter chart values serving the HPA's P95 and in-flight metrics",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = config.load()
    except config.ConfigError as exc:
        sys.exit(f"reranker-operator: {exc}")
    if args.command == "crd":
        sys.stdout.write(crdgen.render_crd())
    elif args.command == "adapter-values":
        sys.stdout.write(render_adapter_values())
    elif args.command == "render":
        if args.prometheus_url:
            settings = settings.model_copy(update={"prometheus_url": args.prometheus_url})
        capabilities = Capabilities(
            service_monitors=args.with_prometheus_operator,
            prometheus_rules=args.with_prometheus_operator,
            scaled_objects=args.with_keda,
        )
        try:
            documents = [doc for path in args.filename for doc in yaml.safe_load_all(path.read_text())]
            objects, warnings = render(documents, settings, capabilities)
        except (OSError, yaml.YAMLError, RenderError) as exc:
            sys.exit("\n".join(f"reranker-operator render: {line}" for line in str(exc).splitlines()))
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True))
    else:
        problem = cluster_configuration_problem(settings)
        if problem is not None:
            print(f"reranker-operator run: {problem}", file=sys.stderr)
            sys.exit(2)
        kopf.cli.main(
            args=kopf_argv(settings, verbose=args.verbose, debug=args.debug), prog_name="reranker-operator"
        )


def cluster_configuration_problem(settings: config.OperatorConfig) -> str | None:
    """Why no cluster can be reached with these settings, in one line; None when a configuration loads.

    Only a missing or broken configuration stops the operator here: API errors after a successful
    start are kopf's to retry, as they always were.
    """
    try:
        load_configuration(settings)
    except (kubernetes.config.ConfigException, OSError, TypeError, ValueError) as exc:
        source = (
            "the in-cluster service account (KUBERNETES_SERVICE_HOST is set)"
            if settings.in_cluster
            else f"KUBECONFIG={settings.kubeconfig}"
            if settings.kubeconfig
            else "~/.kube/config (KUBECONFIG is unset and this is not a pod)"
        )
        return (
            f"no usable cluster configuration: looked for {source}: {str(exc).strip().splitlines()[0]}; "
            "run it in a pod with its service account, or point KUBECONFIG at a kubeconfig"
        )
    return None
