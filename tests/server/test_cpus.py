"""Intra-op threads follow the container's CPU quota, not the host's core count."""

from __future__ import annotations

from reranker_server.cpus import quota_from_cfs, quota_from_cpu_max, threads_for


def test_cgroup_v2_quota_is_read_in_cpus() -> None:
    assert quota_from_cpu_max("200000 100000\n") == 2.0


def test_cgroup_v2_without_limit_has_no_quota() -> None:
    assert quota_from_cpu_max("max 100000\n") is None


def test_cgroup_v1_quota_is_read_in_cpus() -> None:
    assert quota_from_cfs("150000\n", "100000\n") == 1.5


def test_cgroup_v1_minus_one_means_unlimited() -> None:
    assert quota_from_cfs("-1\n", "100000\n") is None


def test_fractional_quota_rounds_up() -> None:
    assert threads_for(1.5, available=64) == 2


def test_quota_never_exceeds_the_cpus_we_may_run_on() -> None:
    assert threads_for(8.0, available=2) == 2


def test_tiny_quota_still_gets_one_thread() -> None:
    assert threads_for(0.1, available=64) == 1


def test_no_quota_uses_every_available_cpu() -> None:
    assert threads_for(None, available=6) == 6
