"""The ServiceAccount admission plugin's changes to a pod (pure half), as a table."""

from __future__ import annotations

import copy

import pytest
from builders import make_pod

from podling.api import serviceaccounts as sa_admission
from podling.api.serviceaccounts import TOKEN_MOUNT_PATH, admit_pod, should_automount

MOUNT = {"name": "kube-api-access-abcde", "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}
VOLUME = {"name": "kube-api-access-abcde", "projected": {
    "defaultMode": 420,
    "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                              "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
SA = {"metadata": {"name": "default"}}


def admitted(pod: dict, sa: dict = SA) -> dict:
    pod = copy.deepcopy(pod)
    admit_pod(pod, sa, lambda: "abcde")
    return pod


@pytest.mark.parametrize("pod_value, sa_value, expected", [
    (None, None, True), (None, False, False), (None, True, True),
    (False, None, False), (False, True, False), (True, False, True), (True, None, True),
])
def test_pod_wins_then_service_account_then_true(pod_value, sa_value, expected) -> None:
    pod = make_pod("p").set_spec(automountServiceAccountToken=pod_value).build()
    sa = {"automountServiceAccountToken": sa_value} if sa_value is not None else {}
    if pod_value is None:
        pod["spec"].pop("automountServiceAccountToken")
    assert should_automount(sa, pod) is expected


def test_volume_and_mount_in_every_init_and_app_container() -> None:
    pod = admitted(make_pod("p").init_container("i").container("a").container("b").build())
    assert pod["spec"]["volumes"] == [VOLUME]
    for key in ("initContainers", "containers"):
        for container in pod["spec"][key]:
            assert container["volumeMounts"] == [MOUNT]


def test_existing_mount_at_the_path_is_kept_and_others_get_ours() -> None:
    own = {"name": "mine", "mountPath": TOKEN_MOUNT_PATH}
    pod = admitted(make_pod("p").container("a", volumeMounts=[own]).container("b").build())
    assert pod["spec"]["containers"][0]["volumeMounts"] == [own]
    assert pod["spec"]["containers"][1]["volumeMounts"] == [MOUNT]
    assert pod["spec"]["volumes"] == [VOLUME]


def test_no_volume_when_every_container_has_its_own_mount() -> None:
    own = {"name": "mine", "mountPath": TOKEN_MOUNT_PATH}
    pod = admitted(make_pod("p").container("a", volumeMounts=[own]).build())
    assert "volumes" not in pod["spec"]


def test_an_existing_kube_api_access_volume_is_reused() -> None:
    existing = {"name": "kube-api-access-zzzzz", "emptyDir": {}}
    pod = admitted(make_pod("p").volume("kube-api-access-zzzzz", emptyDir={}).build())
    assert pod["spec"]["volumes"] == [existing]
    assert pod["spec"]["containers"][0]["volumeMounts"][0]["name"] == "kube-api-access-zzzzz"


def test_automount_false_adds_nothing() -> None:
    pod = make_pod("p").set_spec(automountServiceAccountToken=False).build()
    assert admitted(pod) == pod


@pytest.mark.parametrize("pod_secrets, sa_secrets, expected", [
    (None, [{"name": "reg"}], [{"name": "reg"}]),
    ([{"name": "mine"}], [{"name": "reg"}], [{"name": "mine"}]),
    (None, None, None),
])
def test_image_pull_secrets_come_from_the_account_when_the_pod_has_none(
        pod_secrets, sa_secrets, expected) -> None:
    builder = make_pod("p")
    if pod_secrets is not None:
        builder.set_spec(imagePullSecrets=pod_secrets)
    sa = {"imagePullSecrets": sa_secrets} if sa_secrets is not None else {}
    assert admitted(builder.build(), sa)["spec"].get("imagePullSecrets") == expected


def test_generated_suffixes_use_kubernetes_alphabet() -> None:
    suffix = sa_admission.random_suffix()
    assert len(suffix) == 5 and set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")


ENFORCING = {"metadata": {"name": "strict", "annotations": {
    "kubernetes.io/enforce-mountable-secrets": "true"}}, "secrets": [{"name": "ok"}],
    "imagePullSecrets": [{"name": "reg"}]}
TAIL = "is not allowed because service account strict does not reference that secret"


@pytest.mark.parametrize("pod, problem", [
    (make_pod("p").volume("v", secret={"secretName": "ok"}).build(), None),
    (make_pod("p").volume("v", secret={"secretName": "no"}).build(),
     f'volume with secret.secretName="no" {TAIL}'),
    (make_pod("p").container("c", env=[{"name": "E", "valueFrom": {
        "secretKeyRef": {"name": "no", "key": "k"}}}]).build(),
     f'container c with envVar E referencing secret.secretName="no" {TAIL}'),
    (make_pod("p").init_container("i", envFrom=[{"secretRef": {"name": "no"}}]).build(),
     f'init container i with envFrom referencing secret.secretName="no" {TAIL}'),
    (make_pod("p").set_spec(imagePullSecrets=[{"name": "reg"}, {"name": "other"}]).build(),
     'imagePullSecrets[1].name="other" is not allowed because service account strict does '
     "not reference that imagePullSecret"),
])
def test_enforced_mountable_secrets(pod: dict, problem: str | None) -> None:
    assert sa_admission.mountable_secrets_problem(ENFORCING, pod) == problem
    relaxed = {**ENFORCING, "metadata": {"name": "strict"}}
    assert sa_admission.mountable_secrets_problem(relaxed, pod) is None
