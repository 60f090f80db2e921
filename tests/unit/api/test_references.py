"""The secrets and configmaps a pod refers to (the Node authorizer's edges)."""

from __future__ import annotations

from podling.api.references import config_map_names, secret_names

POD = {"spec": {
    "imagePullSecrets": [{"name": "pull"}, {}],
    "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-from"}}]}],
    "containers": [{"name": "c", "env": [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-c", "key": "k"}}},
        {"name": "C", "value": "plain"}],
        "envFrom": [{"configMapRef": {"name": "from-c"}}]}],
    "ephemeralContainers": [{"name": "e", "envFrom": [{"secretRef": {"name": "debug-s"}}]}],
    "volumes": [{"name": "a", "secret": {"secretName": "vol-s"}},
                {"name": "b", "configMap": {"name": "vol-c"}},
                {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-s"}}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-s"}},
                                                        {"configMap": {"name": "proj-c"}},
                                                        {"downwardAPI": {}}]}},
                {"name": "e", "emptyDir": {}}]}}


def test_secret_names() -> None:
    assert secret_names(POD) == {"pull", "init-from", "env-s", "debug-s", "vol-s", "csi-s",
                                 "proj-s"}


def test_config_map_names() -> None:
    assert config_map_names(POD) == {"env-c", "from-c", "vol-c", "proj-c"}


def test_malformed_pods_refer_to_nothing() -> None:
    for pod in ({}, {"spec": None}, {"spec": {"containers": "x", "volumes": [None, 3]}}):
        assert secret_names(pod) == set() and config_map_names(pod) == set()
