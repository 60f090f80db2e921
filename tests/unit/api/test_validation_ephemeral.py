"""Ephemeral containers: ``validateEphemeralContainers`` (part of the pod spec) and
``ValidatePodEphemeralContainersUpdate`` (the pods/ephemeralcontainers subresource), and the
subresource's strategy, which keeps everything but ``spec.ephemeralContainers`` as stored."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podling.api.defaults import default_pod
from podling.api.resources import PODS
from podling.api.validation import (validate_pod, validate_pod_ephemeral_containers_update,
                                    validate_pod_status_update, validate_pod_update)
from podling.apiserver.registry.pods import PodEphemeralContainersStrategy

Pod = dict[str, Any]
FORBIDDEN = "Forbidden: cannot be set for an Ephemeral Container"


def stored_pod(*ephemeral: dict[str, Any], **meta: Any) -> Pod:
    pod: Pod = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "uid": "u-1",
                             "resourceVersion": "5", **meta},
                "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "nginx"}],
                         "initContainers": [{"name": "init", "image": "busybox"}],
                         "ephemeralContainers": list(ephemeral)},
                "status": {"phase": "Running"}}
    default_pod(pod)
    return pod


def dbg(name: str = "dbg", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", **fields}


def adding(*ephemeral: dict[str, Any], old: Pod | None = None) -> list[tuple[str, str, str]]:
    """Causes of adding ``ephemeral`` to ``old`` (default: a pod without any)."""
    old = old or stored_pod()
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [*old["spec"]["ephemeralContainers"], *ephemeral]
    default_pod(new)
    return [(c.field, c.reason, c.message)
            for c in validate_pod_ephemeral_containers_update(new, old)]


@pytest.mark.parametrize("container, expected", [
    (dbg(targetContainerName="app", stdin=True, tty=True, command=["sh"],
         env=[{"name": "A", "value": "1"}], resources={}), []),
    (dbg(targetContainerName="init"), []),
    (dbg(ports=[{"containerPort": 80}]),
     [("spec.ephemeralContainers[0].ports", "FieldValueForbidden", FORBIDDEN)]),
    (dbg(resources={"limits": {"cpu": "1"}}),
     [("spec.ephemeralContainers[0].resources", "FieldValueForbidden", FORBIDDEN)]),
    (dbg(restartPolicy="Always", lifecycle={"preStop": {"exec": {"command": ["x"]}}},
         readinessProbe={"exec": {"command": ["true"]}}),
     [("spec.ephemeralContainers[0].restartPolicy", "FieldValueForbidden", FORBIDDEN),
      ("spec.ephemeralContainers[0].readinessProbe", "FieldValueForbidden", FORBIDDEN),
      ("spec.ephemeralContainers[0].lifecycle", "FieldValueForbidden", FORBIDDEN)]),
    (dbg(name="app"),
     [("spec.ephemeralContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "app"')]),
    (dbg(name="init"),
     [("spec.ephemeralContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "init"')]),
    (dbg(targetContainerName="nope"),
     [("spec.ephemeralContainers[0].targetContainerName", "FieldValueNotFound",
       'Not found: "nope"')]),
    (dbg(image=" busybox"),
     [("spec.ephemeralContainers[0].image", "FieldValueInvalid",
       'Invalid value: " busybox": must not have leading or trailing whitespace')]),
    (dbg(name="Bad_Name"),
     [("spec.ephemeralContainers[0].name", "FieldValueInvalid",
       'Invalid value: "Bad_Name": a lowercase RFC 1123 label must consist of lower case '
       "alphanumeric characters or '-', and must start and end with an alphanumeric character "
       "(e.g. 'my-name',  or '123-abc', regex used for validation is "
       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]),
])
def test_a_new_ephemeral_container_is_validated(container, expected) -> None:
    assert adding(container) == expected


def test_sub_paths_are_forbidden_and_names_unique_among_ephemeral_containers() -> None:
    pod = stored_pod()
    pod["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    mount = {"name": "v", "mountPath": "/v", "subPath": "a"}
    assert adding(dbg(volumeMounts=[mount]), dbg(), old=pod) == [
        ("spec.ephemeralContainers[0].volumeMounts[0].subPath", "FieldValueForbidden",
         FORBIDDEN),
        ("spec.ephemeralContainers[1].name", "FieldValueDuplicate", 'Duplicate value: "dbg"')]


def test_existing_ephemeral_containers_may_not_be_changed_or_removed() -> None:
    old = stored_pod(dbg(), dbg("other"))
    changed = copy.deepcopy(old)
    changed["spec"]["ephemeralContainers"][0]["image"] = "nginx"
    [cause] = validate_pod_ephemeral_containers_update(changed, old)
    assert (cause.field, cause.reason) == ("spec.ephemeralContainers", "FieldValueForbidden")
    assert cause.message.startswith(
        'Forbidden: existing ephemeral containers "dbg" may not be changed\n')
    assert '"busybox"' in cause.message and '"nginx"' in cause.message
    removed = copy.deepcopy(old)
    removed["spec"]["ephemeralContainers"].pop(1)
    assert [(c.field, c.message) for c in validate_pod_ephemeral_containers_update(
        removed, old)] == [("spec.ephemeralContainers", 'Forbidden: existing ephemeral '
                            'containers "other" may not be removed\n')]
    reordered = copy.deepcopy(old)  # a patch need not keep the order
    reordered["spec"]["ephemeralContainers"].reverse()
    assert validate_pod_ephemeral_containers_update(reordered, old) == []


def test_static_pods_take_no_ephemeral_containers() -> None:
    old = stored_pod(annotations={"kubernetes.io/config.mirror": "x"})
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [dbg()]
    default_pod(new)
    assert [(c.field, c.message) for c in validate_pod_ephemeral_containers_update(new, old)] \
        == [("", "Forbidden: static pods do not support ephemeral containers")]


def test_create_and_ordinary_updates_refuse_ephemeral_containers() -> None:
    created = stored_pod(dbg())
    assert ("spec.ephemeralContainers", "Forbidden: cannot be set on create") in \
        [(c.field, c.message) for c in validate_pod(created)]
    old = stored_pod()
    causes = validate_pod_update(stored_pod(dbg()), old)
    assert [c.field for c in causes] == ["spec"]
    assert causes[0].message.startswith("Forbidden: pod updates may not change fields other")


def test_a_terminated_ephemeral_container_stays_terminated() -> None:
    old = stored_pod(dbg())
    old["status"]["ephemeralContainerStatuses"] = [
        {"name": "dbg", "state": {"terminated": {"exitCode": 0}}}]
    new = copy.deepcopy(old)
    new["status"]["ephemeralContainerStatuses"][0]["state"] = {"running": {}}
    assert [(c.field, c.message) for c in validate_pod_status_update(new, old)] == [
        ("status.ephemeralContainerStatuses[0].state",
         "Forbidden: may not be transitioned to non-terminated state")]


def test_the_strategy_keeps_everything_but_the_ephemeral_containers() -> None:
    strategy = PodEphemeralContainersStrategy(PODS)
    old = stored_pod(dbg())
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"sneaky": "yes"}
    new["spec"]["containers"][0]["image"] = "evil"
    new["status"] = {"phase": "Failed"}
    new["spec"]["ephemeralContainers"].append(dbg("two"))
    strategy.default(new)  # the store's order: default, prepare, validate
    strategy.prepare_for_update(new, old)
    expected = copy.deepcopy(old)
    expected["spec"]["ephemeralContainers"].append(dbg("two"))
    default_pod(expected)
    assert new == expected
    assert strategy.validate_update(new, old) == []
