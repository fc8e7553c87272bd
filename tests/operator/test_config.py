"""Operator settings from the environment the chart sets."""

from __future__ import annotations

import tomllib

import pytest
from reranker_operator import config

from tests.operator.conftest import ROOT


def test_defaults_are_cluster_wide_standalone_text_logs_and_the_release_images():
    settings = config.OperatorConfig.from_env({})
    assert settings.clusterwide
    assert settings.peering is None
    assert settings.log_format == "text"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert settings.server_image == f"kube-reranker/reranker-server:{version}"
    assert settings.server_gpu_image == f"kube-reranker/reranker-server-gpu:{version}"
    assert (settings.prometheus_url, settings.metrics_port, settings.resync_seconds) == (None, None, 300)


def test_every_setting_is_read_from_its_variable():
    settings = config.OperatorConfig.from_env(
        {
            "RERANKER_OPERATOR_NAMESPACES": " search, ads ,",
            "RERANKER_OPERATOR_PEERING": "kube-reranker",
            "RERANKER_OPERATOR_SERVER_IMAGE": "registry/server:1",
            "RERANKER_OPERATOR_SERVER_GPU_IMAGE": "registry/server-gpu:1",
            "RERANKER_OPERATOR_PROMETHEUS_URL": "http://prometheus:9090",
            "RERANKER_OPERATOR_LOG_FORMAT": "json",
            "RERANKER_OPERATOR_RESYNC_SECONDS": "60",
            "RERANKER_OPERATOR_METRICS_PORT": "9091",
            "RERANKER_OPERATOR_LIVENESS_PORT": "18080",
            "KUBECONFIG": "/tmp/kubeconfig",
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        }
    )
    assert settings.namespaces == ("search", "ads")
    assert not settings.clusterwide
    assert settings.peering == "kube-reranker"
    assert (settings.server_image, settings.server_gpu_image) == (
        "registry/server:1",
        "registry/server-gpu:1",
    )
    assert settings.prometheus_url == "http://prometheus:9090"
    assert (settings.log_format, settings.resync_seconds, settings.metrics_port) == ("json", 60, 9091)
    assert (settings.kubeconfig, settings.in_cluster) == ("/tmp/kubeconfig", True)
    assert settings.liveness_endpoint == "http://0.0.0.0:18080/healthz"


def test_liveness_is_served_where_the_charts_probe_asks_by_default():
    assert config.OperatorConfig.from_env({}).liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_the_pod_name_identifies_a_replica_and_processes_outside_pods_get_host_and_pid():
    assert config.OperatorConfig.from_env({"POD_ID": "kube-reranker-operator-0"}).pod_id == (
        "kube-reranker-operator-0"
    )
    assert config.OperatorConfig.from_env({}, default_pod_id="laptop-4242").pod_id == "laptop-4242"
    assert config.load().pod_id


def test_empty_variables_mean_the_default():
    settings = config.OperatorConfig.from_env(
        {"RERANKER_OPERATOR_PEERING": "", "RERANKER_OPERATOR_NAMESPACES": ""}
    )
    assert settings.peering is None
    assert settings.clusterwide


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("RESYNC_SECONDS", "soon"),
        ("RESYNC_SECONDS", "1"),
        ("METRICS_PORT", "70000"),
        ("LIVENESS_PORT", "0"),
    ],
)
def test_a_wrong_value_is_rejected_with_the_variable_name(name, value):
    with pytest.raises(config.ConfigError, match=f"RERANKER_OPERATOR_{name}"):
        config.OperatorConfig.from_env({f"RERANKER_OPERATOR_{name}": value})
