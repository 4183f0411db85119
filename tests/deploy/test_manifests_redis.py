"""The Kubernetes manifests point every replica at one Redis for rate-limit counters: by a
Service name in the kustomization's namespace, reachable from gateway pods only, and never
deployed by the gateway's own kustomization."""

from __future__ import annotations

import re

import yarl

from gateway.config import Config, LimitBackend
from tests.deploy.test_manifests import GATEWAY_LABELS, _kustomization, _resources, k8s_config

__all__ = ["k8s_config"]  # the fixture, re-exported for pytest


def test_replicas_share_rate_limit_counters_through_a_redis_service(k8s_config: Config) -> None:
    """rate_limits uses Redis at an in-cluster Service name in the kustomization's namespace."""
    settings = k8s_config.rate_limits
    assert settings.backend is LimitBackend.REDIS
    assert settings.url is not None
    url = yarl.URL(settings.url)
    match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", url.host or "")
    assert match, url.host
    assert match.group(2) == _kustomization()["namespace"]
    assert settings.timeout <= 0.25  # a dead Redis costs a request at most this long


def test_the_sample_routes_limit_per_client(k8s_config: Config) -> None:
    """The routes inherit a per-client limit (counted in Redis)."""
    assert all(route.rate_limit is not None for route in k8s_config.routes.routes)


def test_redis_accepts_only_gateway_pods(k8s_config: Config) -> None:
    """A NetworkPolicy admits gateway pods, and only them, to the Redis port."""
    port = yarl.URL(k8s_config.rate_limits.url or "").port
    policies = [
        doc for doc in _resources()
        if doc["kind"] == "NetworkPolicy"
        and doc["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    ]  # fmt: skip
    assert len(policies) == 1
    (rule,) = policies[0]["spec"]["ingress"]
    assert [peer["podSelector"]["matchLabels"] for peer in rule["from"]] == [GATEWAY_LABELS]
    assert [p["port"] for p in rule["ports"]] == [port]


def test_the_gateway_does_not_deploy_redis() -> None:
    """Redis is the operator's: no workload of the kustomization runs it."""
    workloads = [d for d in _resources() if d["kind"] in {"Deployment", "StatefulSet", "Pod"}]
    assert [d["metadata"]["name"] for d in workloads] == ["gateway"]
