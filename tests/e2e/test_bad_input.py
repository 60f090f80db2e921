"""Bad input over plain HTTP: invalid pods (422 with exact causes), malformed and oversized
bodies, wrong media types, strict field validation, bad selectors and unknown paths.

Every response in this module is recorded; the last test checks that none was a 5xx, that
the server still serves and that the objects stored before the abuse are unchanged.
"""

from __future__ import annotations

import copy
import http.client
import json
import uuid
from typing import Any, Callable

import pytest
from builders import make_pod
from rawhttps import RawHttps

PODS = "/api/v1/namespaces/default/pods"
RESPONSE_CODES: list[tuple[str, str, int]] = []


class Http(RawHttps):
    """The server's raw HTTPS client, recording every status for the final test."""

    def __init__(self, server) -> None:
        super().__init__(server.url, server.token, server.ca_file)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json",
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, Any]:
        status, got_headers, data = super().request(method, path, body, content_type, headers)
        RESPONSE_CODES.append((method, path, status))
        return status, got_headers, data


@pytest.fixture(scope="module")
def api(shared_server) -> Http:
    return Http(shared_server)


@pytest.fixture(scope="module")
def baseline(api) -> dict:
    """A pod stored before any abuse; the final test checks it is unchanged."""
    status, _, body = api.request("POST", PODS, pod("baseline-pod", labels={"keep": "me"}))
    assert status == 201, body
    return body


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def pod(name: str | None = None, labels: dict | None = None, **spec: Any) -> dict:
    """A bare pod (image busybox:1.36, a unique name unless given) with ``spec`` added."""
    body = make_pod(name or unique(), None).container("c", "busybox:1.36").bare()
    if labels:
        body.labels(**labels)
    return body.set_spec(**spec).build()


def assert_status(body: Any, code: int, reason: str) -> None:
    assert isinstance(body, dict), body
    assert body.get("kind") == "Status", body
    assert body.get("apiVersion") == "v1", body
    assert body.get("status") == "Failure", body
    assert body.get("code") == code, body
    assert body.get("reason") == reason, body


# -- the table of invalid pods ---------------------------------------------------------------

Mutator = Callable[[dict], None]


def ctr(p: dict, i: int = 0) -> dict:
    return p["spec"]["containers"][i]


def spec(p: dict) -> dict:
    return p["spec"]


def _set(**values: Any) -> Mutator:
    return lambda p: spec(p).update(copy.deepcopy(values))


def _ctr(**values: Any) -> Mutator:
    return lambda p: ctr(p).update(copy.deepcopy(values))


def _meta(**values: Any) -> Mutator:
    return lambda p: p["metadata"].update(copy.deepcopy(values))


def _many(*mutators: Mutator) -> Mutator:
    def apply(p: dict) -> None:
        for m in mutators:
            m(p)
    return apply


def _probe(**probe: Any) -> Mutator:
    return _ctr(livenessProbe=probe)


EXEC = {"exec": {"command": ["true"]}}
HTTP = {"httpGet": {"port": 8080}}

# (id, mutation, field, cause reason)
INVALID_PODS: list[tuple[str, Mutator, str, str]] = [
    # metadata
    ("name-invalid", _meta(name="Bad_Name"), "metadata.name", "FieldValueInvalid"),
    ("name-missing", lambda p: p["metadata"].pop("name"), "metadata.name", "FieldValueRequired"),
    ("name-too-long", _meta(name="a" * 254), "metadata.name", "FieldValueInvalid"),
    ("label-key-invalid", _meta(labels={"bad key": "v"}), "metadata.labels", "FieldValueInvalid"),
    ("label-name-too-long", _meta(labels={"a" * 64: "v"}), "metadata.labels",
     "FieldValueInvalid"),
    ("label-value-too-long", _meta(labels={"k": "v" * 64}), "metadata.labels",
     "FieldValueInvalid"),
    ("label-value-invalid", _meta(labels={"k": "-bad-"}), "metadata.labels",
     "FieldValueInvalid"),
    ("annotation-key-invalid", _meta(annotations={"bad key!": "v"}), "metadata.annotations",
     "FieldValueInvalid"),
    ("annotations-too-large", _meta(annotations={"big": "x" * (256 * 1024 + 1)}),
     "metadata.annotations", "FieldValueTooLong"),
    ("deletion-cost-not-int",
     _meta(annotations={"controller.kubernetes.io/pod-deletion-cost": "abc"}),
     "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]", "FieldValueInvalid"),
    # containers
    ("no-containers", _set(containers=[]), "spec.containers", "FieldValueRequired"),
    ("container-name-invalid", _ctr(name="Bad_Name"), "spec.containers[0].name",
     "FieldValueInvalid"),
    ("container-name-missing", _ctr(name=""), "spec.containers[0].name", "FieldValueRequired"),
    ("container-name-duplicate",
     _set(containers=[{"name": "c", "image": "a"}, {"name": "c", "image": "b"}]),
     "spec.containers[1].name", "FieldValueDuplicate"),
    ("image-missing", lambda p: ctr(p).pop("image"), "spec.containers[0].image",
     "FieldValueRequired"),
    ("image-whitespace", _ctr(image=" busybox "), "spec.containers[0].image",
     "FieldValueInvalid"),
    ("pull-policy", _ctr(imagePullPolicy="Sometimes"), "spec.containers[0].imagePullPolicy",
     "FieldValueNotSupported"),
    ("termination-message-policy", _ctr(terminationMessagePolicy="Maybe"),
     "spec.containers[0].terminationMessagePolicy", "FieldValueNotSupported"),
    ("container-restart-policy", _ctr(restartPolicy="Always"),
     "spec.containers[0].restartPolicy", "FieldValueForbidden"),
    # ports
    ("container-port-zero", _ctr(ports=[{"containerPort": 0}]),
     "spec.containers[0].ports[0].containerPort", "FieldValueRequired"),
    ("container-port-too-big", _ctr(ports=[{"containerPort": 70000}]),
     "spec.containers[0].ports[0].containerPort", "FieldValueInvalid"),
    ("host-port-too-big", _ctr(ports=[{"containerPort": 80, "hostPort": 65536}]),
     "spec.containers[0].ports[0].hostPort", "FieldValueInvalid"),
    ("port-protocol", _ctr(ports=[{"containerPort": 80, "protocol": "XTP"}]),
     "spec.containers[0].ports[0].protocol", "FieldValueNotSupported"),
    ("port-name-invalid", _ctr(ports=[{"containerPort": 80, "name": "Bad_Name"}]),
     "spec.containers[0].ports[0].name", "FieldValueInvalid"),
    ("port-name-too-long", _ctr(ports=[{"containerPort": 80, "name": "a" * 16}]),
     "spec.containers[0].ports[0].name", "FieldValueInvalid"),
    ("port-name-duplicate", _ctr(ports=[{"containerPort": 80, "name": "http"},
                                        {"containerPort": 81, "name": "http"}]),
     "spec.containers[0].ports[1].name", "FieldValueDuplicate"),
    ("host-network-host-port-mismatch",
     _many(_set(hostNetwork=True), _ctr(ports=[{"containerPort": 80, "hostPort": 81}])),
     "spec.containers[0].ports[0].hostPort", "FieldValueInvalid"),
    # env
    ("env-name-with-equals", _ctr(env=[{"name": "A=B", "value": "x"}]),
     "spec.containers[0].env[0].name", "FieldValueInvalid"),
    ("env-name-missing", _ctr(env=[{"value": "x"}]), "spec.containers[0].env[0].name",
     "FieldValueRequired"),
    ("env-value-and-value-from",
     _ctr(env=[{"name": "A", "value": "x",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
     "spec.containers[0].env[0].valueFrom", "FieldValueInvalid"),
    ("env-value-from-empty", _ctr(env=[{"name": "A", "valueFrom": {}}]),
     "spec.containers[0].env[0].valueFrom", "FieldValueInvalid"),
    ("env-field-ref-unsupported",
     _ctr(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]),
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "FieldValueInvalid"),
    ("env-from-no-source", _ctr(envFrom=[{"prefix": "P_"}]), "spec.containers[0].envFrom",
     "FieldValueInvalid"),  # Kubernetes reports this one without the index
    # volumes and mounts
    ("volume-name-invalid", _set(volumes=[{"name": "Bad_Vol", "emptyDir": {}}]),
     "spec.volumes[0].name", "FieldValueInvalid"),
    ("volume-duplicate",
     _set(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     "spec.volumes[1].name", "FieldValueDuplicate"),
    ("volume-two-sources",
     _set(volumes=[{"name": "v", "hostPath": {"path": "/tmp"}, "emptyDir": {}}]),
     "spec.volumes[0].hostPath", "FieldValueForbidden"),  # emptyDir is checked first
    ("mount-unknown-volume", _ctr(volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
     "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"),
    ("mount-path-missing",
     _many(_set(volumes=[{"name": "v", "emptyDir": {}}]), _ctr(volumeMounts=[{"name": "v"}])),
     "spec.containers[0].volumeMounts[0].mountPath", "FieldValueRequired"),
    ("mount-path-duplicate",
     _many(_set(volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]),
           _ctr(volumeMounts=[{"name": "v", "mountPath": "/x"},
                              {"name": "w", "mountPath": "/x"}])),
     "spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid"),
    ("sub-path-backsteps",
     _many(_set(volumes=[{"name": "v", "emptyDir": {}}]),
           _ctr(volumeMounts=[{"name": "v", "mountPath": "/x", "subPath": "../etc"}])),
     "spec.containers[0].volumeMounts.subPath", "FieldValueInvalid"),  # no index, as upstream
    ("sub-path-absolute",
     _many(_set(volumes=[{"name": "v", "emptyDir": {}}]),
           _ctr(volumeMounts=[{"name": "v", "mountPath": "/x", "subPath": "/etc"}])),
     "spec.containers[0].volumeMounts.subPath", "FieldValueInvalid"),
    ("host-path-missing", _set(volumes=[{"name": "v", "hostPath": {"path": ""}}]),
     "spec.volumes[0].hostPath.path", "FieldValueRequired"),
    ("host-path-backsteps", _set(volumes=[{"name": "v", "hostPath": {"path": "/a/../b"}}]),
     "spec.volumes[0].hostPath.path", "FieldValueInvalid"),
    ("host-path-type", _set(volumes=[{"name": "v", "hostPath": {"path": "/t", "type": "Dir"}}]),
     "spec.volumes[0].hostPath.type", "FieldValueNotSupported"),
    ("config-map-no-name", _set(volumes=[{"name": "v", "configMap": {}}]),
     "spec.volumes[0].configMap.name", "FieldValueRequired"),
    ("config-map-bad-mode", _set(volumes=[{"name": "v", "configMap": {"name": "cm",
                                                                       "defaultMode": 0o1000}}]),
     "spec.volumes[0].configMap.defaultMode", "FieldValueInvalid"),
    ("secret-no-name", _set(volumes=[{"name": "v", "secret": {}}]),
     "spec.volumes[0].secret.secretName", "FieldValueRequired"),
    ("pvc-no-claim", _set(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": ""}}]),
     "spec.volumes[0].persistentVolumeClaim.claimName", "FieldValueRequired"),
    # pod-level enums and scalars
    ("restart-policy", _set(restartPolicy="Sometimes"), "spec.restartPolicy",
     "FieldValueNotSupported"),
    ("dns-policy", _set(dnsPolicy="Nearby"), "spec.dnsPolicy", "FieldValueNotSupported"),
    ("dns-none-without-config", _set(dnsPolicy="None"), "spec.dnsConfig", "FieldValueRequired"),
    ("dns-too-many-nameservers",
     _set(dnsConfig={"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}),
     "spec.dnsConfig.nameservers", "FieldValueInvalid"),
    ("dns-nameserver-not-ip", _set(dnsConfig={"nameservers": ["not-an-ip"]}),
     "spec.dnsConfig.nameservers[0]", "FieldValueInvalid"),
    ("active-deadline-zero", _set(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds",
     "FieldValueInvalid"),
    ("node-name-invalid", _set(nodeName="Bad_Node"), "spec.nodeName", "FieldValueInvalid"),
    ("hostname-invalid", _set(hostname="Bad_Host"), "spec.hostname", "FieldValueInvalid"),
    ("subdomain-invalid", _set(subdomain="Bad_Sub"), "spec.subdomain", "FieldValueInvalid"),
    ("node-selector-key", _set(nodeSelector={"bad key": "v"}), "spec.nodeSelector",
     "FieldValueInvalid"),
    ("node-selector-value", _set(nodeSelector={"k": "bad value"}), "spec.nodeSelector",
     "FieldValueInvalid"),
    ("preemption-policy", _set(preemptionPolicy="Sometimes"), "spec.preemptionPolicy",
     "FieldValueNotSupported"),
    ("os-name", _set(os={"name": "plan9"}), "spec.os", "FieldValueNotSupported"),
    ("os-name-empty", _set(os={"name": ""}), "spec.os.name", "FieldValueRequired"),
    ("ephemeral-on-create",
     _set(ephemeralContainers=[{"name": "dbg", "image": "busybox"}]),
     "spec.ephemeralContainers", "FieldValueForbidden"),
    ("readiness-gate-invalid", _set(readinessGates=[{"conditionType": "bad type!"}]),
     "spec.readinessGates[0].conditionType", "FieldValueInvalid"),
    # host namespaces and aliases
    ("share-pid-with-host-pid", _set(shareProcessNamespace=True, hostPID=True),
     "spec.securityContext.shareProcessNamespace", "FieldValueInvalid"),
    ("host-alias-bad-ip", _set(hostAliases=[{"ip": "999.1.1.1", "hostnames": ["a"]}]),
     "spec.hostAliases[0].ip", "FieldValueInvalid"),
    ("host-alias-bad-hostname", _set(hostAliases=[{"ip": "10.0.0.1", "hostnames": ["Bad_H"]}]),
     "spec.hostAliases[0].hostnames[0]", "FieldValueInvalid"),
    # tolerations
    ("toleration-operator", _set(tolerations=[{"key": "k", "operator": "Maybe"}]),
     "spec.tolerations[0].operator", "FieldValueNotSupported"),
    ("toleration-exists-with-value",
     _set(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
     "spec.tolerations[0].operator", "FieldValueInvalid"),
    ("toleration-effect", _set(tolerations=[{"key": "k", "operator": "Exists",
                                              "effect": "Sometimes"}]),
     "spec.tolerations[0].effect", "FieldValueNotSupported"),
    ("toleration-seconds-without-no-execute",
     _set(tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                        "tolerationSeconds": 5}]),
     "spec.tolerations[0].effect", "FieldValueInvalid"),
    # lifecycle and probes
    ("hook-without-handler", _ctr(lifecycle={"postStart": {}}),
     "spec.containers[0].lifecycle.postStart", "FieldValueRequired"),
    ("probe-without-handler", _probe(periodSeconds=5), "spec.containers[0].livenessProbe",
     "FieldValueRequired"),
    ("probe-two-handlers", _probe(**EXEC, **HTTP),
     "spec.containers[0].livenessProbe.httpGet", "FieldValueForbidden"),
    ("liveness-success-threshold", _probe(**EXEC, successThreshold=2),
     "spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid"),
    ("probe-negative-period", _probe(**EXEC, periodSeconds=-1),
     "spec.containers[0].livenessProbe.periodSeconds", "FieldValueInvalid"),
    ("probe-http-port-zero", _probe(httpGet={"port": 0}),
     "spec.containers[0].livenessProbe.httpGet.port", "FieldValueInvalid"),
    ("probe-http-scheme", _probe(httpGet={"port": 80, "scheme": "FTP"}),
     "spec.containers[0].livenessProbe.httpGet.scheme", "FieldValueNotSupported"),
    ("probe-exec-empty", _probe(exec={"command": []}),
     "spec.containers[0].livenessProbe.exec.command", "FieldValueRequired"),
    # resources
    ("requests-over-limits", _ctr(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     "spec.containers[0].resources.requests", "FieldValueInvalid"),  # upstream: no key
    ("negative-request", _ctr(resources={"requests": {"memory": "-1"}}),
     "spec.containers[0].resources.requests[memory]", "FieldValueInvalid"),
    # init containers
    ("init-name-clashes-with-container",
     _set(initContainers=[{"name": "c", "image": "busybox"}]),
     "spec.initContainers[0].name", "FieldValueDuplicate"),
    ("init-duplicate",
     _set(initContainers=[{"name": "i", "image": "busybox"}, {"name": "i", "image": "busybox"}]),
     "spec.initContainers[1].name", "FieldValueDuplicate"),
    ("init-restart-policy", _set(initContainers=[{"name": "i", "image": "busybox",
                                                   "restartPolicy": "Never"}]),
     "spec.initContainers[0].restartPolicy", "FieldValueNotSupported"),
    ("init-liveness-probe", _set(initContainers=[{"name": "i", "image": "busybox",
                                                   "livenessProbe": EXEC}]),
     "spec.initContainers[0].livenessProbe", "FieldValueForbidden"),
    # security contexts
    ("run-as-user-negative", _set(securityContext={"runAsUser": -1}),
     "spec.securityContext.runAsUser", "FieldValueInvalid"),
    ("run-as-group-negative", _set(securityContext={"runAsGroup": -1}),
     "spec.securityContext.runAsGroup", "FieldValueInvalid"),
    ("fs-group-negative", _set(securityContext={"fsGroup": -1}),
     "spec.securityContext.fsGroup", "FieldValueInvalid"),
    ("supplemental-group-negative", _set(securityContext={"supplementalGroups": [-1]}),
     "spec.securityContext.supplementalGroups[0]", "FieldValueInvalid"),
    ("sysctl-name", _set(securityContext={"sysctls": [{"name": "bad name", "value": "1"}]}),
     "spec.securityContext.sysctls[0].name", "FieldValueInvalid"),
    ("seccomp-type", _set(securityContext={"seccompProfile": {"type": "Bogus"}}),
     "spec.securityContext.seccompProfile.type", "FieldValueNotSupported"),
    ("seccomp-localhost-without-profile",
     _set(securityContext={"seccompProfile": {"type": "Localhost"}}),
     "spec.securityContext.seccompProfile.localhostProfile", "FieldValueRequired"),
    ("container-run-as-user-negative", _ctr(securityContext={"runAsUser": -1}),
     "spec.containers[0].securityContext.runAsUser", "FieldValueInvalid"),
    ("privileged-without-escalation",
     _ctr(securityContext={"privileged": True, "allowPrivilegeEscalation": False}),
     "spec.containers[0].securityContext", "FieldValueInvalid"),
    ("proc-mount", _ctr(securityContext={"procMount": "Weird"}),
     "spec.containers[0].securityContext.procMount", "FieldValueNotSupported"),
    # scheduling
    ("node-affinity-no-terms",
     _set(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
         "nodeSelectorTerms": []}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms", "FieldValueRequired"),
    ("node-affinity-bad-operator",
     _set(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
         "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Near",
                                                      "values": ["v"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms[0].matchExpressions[0].operator", "FieldValueInvalid"),
    ("topology-spread-max-skew",
     _set(topologySpreadConstraints=[{"maxSkew": 0, "topologyKey": "zone",
                                      "whenUnsatisfiable": "DoNotSchedule"}]),
     "spec.topologySpreadConstraints[0].maxSkew", "FieldValueInvalid"),
    ("topology-spread-when-unsatisfiable",
     _set(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                      "whenUnsatisfiable": "Whatever"}]),
     "spec.topologySpreadConstraints[0].whenUnsatisfiable", "FieldValueNotSupported"),
]


def test_the_table_is_big_enough():
    assert len(INVALID_PODS) >= 50
    assert len({case[0] for case in INVALID_PODS}) == len(INVALID_PODS)


@pytest.mark.parametrize("case, mutate, field, reason", INVALID_PODS,
                         ids=[c[0] for c in INVALID_PODS])
def test_invalid_pod_is_422_with_the_exact_cause(api, baseline, case, mutate, field, reason):
    body = pod(unique(case[:40]))
    mutate(body)
    status, _, answer = api.request("POST", PODS, body)
    assert status == 422, answer
    assert_status(answer, 422, "Invalid")
    causes = answer["details"]["causes"]
    assert (field, reason) in [(c.get("field"), c.get("reason")) for c in causes], causes
    assert answer["details"]["kind"] == "Pod"
    name = body["metadata"].get("name")
    if name:
        assert answer["details"]["name"] == name
        assert answer["message"].startswith(f'Pod "{name}" is invalid: ')
        # nothing was stored
        got, _, _ = api.request("GET", f"{PODS}/{name}")
        assert got == 404


def test_invalid_generate_name(api):
    body = pod()
    body["metadata"] = {"generateName": "Bad_"}
    status, _, answer = api.request("POST", PODS, body)
    assert status == 422, answer
    assert_status(answer, 422, "Invalid")
    fields = {(c["field"], c["reason"]) for c in answer["details"]["causes"]}
    assert ("metadata.generateName", "FieldValueInvalid") in fields, fields


def test_many_problems_are_reported_together(api):
    body = pod(unique("many"), restartPolicy="Sometimes", dnsPolicy="Nearby")
    body["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    status, _, answer = api.request("POST", PODS, body)
    assert status == 422
    fields = {c["field"] for c in answer["details"]["causes"]}
    assert {"spec.restartPolicy", "spec.dnsPolicy",
            "spec.containers[0].imagePullPolicy"} <= fields


def test_negative_termination_grace_period_is_accepted(api):
    """Kubernetes does not reject a negative grace period on create (it is treated as 1)."""
    status, _, answer = api.request("POST", PODS, pod(unique("neg-grace"),
                                                       terminationGracePeriodSeconds=-5))
    assert status == 201, answer


def test_namespace_mismatch_is_400(api):
    body = pod(unique("ns"))
    body["metadata"]["namespace"] = "kube-system"
    status, _, answer = api.request("POST", PODS, body)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert "does not match the namespace" in answer["message"]


# -- malformed bodies ------------------------------------------------------------------------

def test_malformed_json_is_400(api):
    status, _, answer = api.request("POST", PODS, '{"apiVersion": "v1", "kind": "Pod", ')
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


def test_malformed_yaml_is_400(api):
    status, _, answer = api.request("POST", PODS, "apiVersion: v1\nkind: Pod\nmetadata: [\n",
                                    content_type="application/yaml")
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


DEEP = '{"metadata": {"name": "deep", "annotations": ' + '{"a": ' * 5000 + '1' + '}' * 5001


@pytest.mark.parametrize("body, content_type, message", [
    (DEEP, "application/json", "invalid JSON: exceeded max depth of 100"),
    (DEEP, "application/yaml",
     "error converting YAML to JSON: yaml: exceeded max depth of 100"),
    ("spec: " + "[" * 50_000, "application/yaml",
     "error converting YAML to JSON: yaml: exceeded max depth of 100"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {name: \xc3\x28}\n", "application/yaml",
     "error converting YAML to JSON: yaml: invalid UTF-8 or a control character at byte "
     "offset 42"),
], ids=["deep-json", "deep-yaml-flow", "deep-yaml-unclosed", "yaml-not-utf8"])
def test_bodies_too_deep_or_not_text_are_400(api, patch_target, body, content_type, message):
    status, _, answer = api.request("POST", PODS, body, content_type=content_type)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert answer["message"] == message
    patch_type = "application/merge-patch+json" if "json" in content_type \
        else "application/apply-patch+yaml"
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}", body,
                                    content_type=patch_type)
    assert status in (400, 415), answer  # server-side apply is answered 415 before decoding


def test_valid_yaml_body_is_accepted(api):
    name = unique("yaml")
    text = (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n"
            f"  - name: c\n    image: busybox:1.36\n")
    status, _, answer = api.request("POST", PODS, text, content_type="application/yaml")
    assert status == 201, answer
    assert answer["metadata"]["name"] == name


def test_json_array_body_is_400(api):
    status, _, answer = api.request("POST", PODS, [pod()])
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


def test_empty_body_is_400(api):
    status, _, answer = api.request("POST", PODS, b"")
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


@pytest.mark.parametrize("change", [
    {"kind": "Node"}, {"kind": "Pods"}, {"apiVersion": "v2"}, {"apiVersion": "apps/v1"},
], ids=["kind-node", "kind-pods", "version-v2", "version-apps"])
def test_wrong_kind_or_api_version_is_400(api, change):
    body = pod(unique("kind"))
    body.update(change)
    status, _, answer = api.request("POST", PODS, body)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


@pytest.mark.parametrize("missing", [("kind",), ("apiVersion",), ("kind", "apiVersion")],
                         ids=["kind", "apiVersion", "both"])
def test_missing_kind_or_api_version_is_defaulted_from_the_url(api, missing):
    """Kubernetes decodes a body with the URL's group/version/kind as defaults
    (gvkWithDefaults), so a body without kind and/or apiVersion is a Pod here."""
    name = unique("miss")
    body = pod(name)
    for key in missing:
        del body[key]
    status, _, answer = api.request("POST", PODS, body)
    assert status == 201, answer
    assert answer["kind"] == "Pod" and answer["apiVersion"] == "v1"
    assert answer["metadata"]["name"] == name


def test_body_over_3_mib_is_413(api):
    body = pod(unique("huge"))
    body["metadata"]["annotations"] = {"big": "x" * (3 * 1024 * 1024 + 10)}
    status, _, answer = api.request("POST", PODS, body)
    assert status == 413, answer
    assert_status(answer, 413, "RequestEntityTooLarge")


def test_strict_unknown_field_is_400(api):
    body = pod(unique("strict"))
    body["spec"]["containerz"] = []
    status, _, answer = api.request("POST", PODS + "?fieldValidation=Strict", body)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert 'strict decoding error: unknown field "spec.containerz"' in answer["message"]


def test_strict_duplicate_field_is_400(api):
    name = unique("dup")
    text = ('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "%s", "name": "%s"},'
            ' "spec": {"containers": [{"name": "c", "image": "busybox"}]}}' % (name, name))
    status, _, answer = api.request("POST", PODS + "?fieldValidation=Strict", text)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert 'duplicate field "metadata.name"' in answer["message"]


def test_unknown_field_under_warn_is_created_with_a_warning(api):
    name = unique("warn")
    body = pod(name)
    body["spec"]["containerz"] = []
    status, headers, answer = api.request("POST", PODS + "?fieldValidation=Warn", body)
    assert status == 201, answer
    warnings = headers.get_all("Warning") or []
    assert '299 - "unknown field \\"spec.containerz\\""' in warnings, warnings
    assert all(w.startswith("299 - ") for w in warnings), warnings
    assert "containerz" not in answer["spec"]


def test_unknown_field_is_dropped_silently_under_ignore(api):
    body = pod(unique("ignore"))
    body["spec"]["containerz"] = []
    status, headers, answer = api.request("POST", PODS + "?fieldValidation=Ignore", body)
    assert status == 201, answer
    assert not [w for w in headers.get_all("Warning") or [] if "containerz" in w]
    assert "containerz" not in answer["spec"]


def test_bogus_field_validation_is_400(api):
    status, _, answer = api.request("POST", PODS + "?fieldValidation=Bogus", pod(unique("bog")))
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert "fieldValidation" in answer["message"]


@pytest.mark.parametrize("spec_patch", [
    {"containers": "x"},
    {"containers": [{"name": "c", "image": 5}]},
    {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]},
    {"hostNetwork": "yes"},
    {"terminationGracePeriodSeconds": 1.5},
], ids=["containers-string", "image-number", "port-string", "bool-string", "int-float"])
def test_wrong_types_are_400(api, spec_patch):
    body = pod(unique("type"))
    body["spec"].update(spec_patch)
    status, _, answer = api.request("POST", PODS, body)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert "cannot unmarshal" in answer["message"], answer["message"]


def test_bad_quantity_is_400(api):
    body = pod(unique("qty"))
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
    status, _, answer = api.request("POST", PODS, body)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")
    assert "quantities must match the regular expression" in answer["message"]


def test_protobuf_body_is_415(api):
    status, _, answer = api.request("POST", PODS, b"k8s\x00\n\x0b\n\x02v1\x12\x03Pod",
                                    content_type="application/vnd.kubernetes.protobuf")
    assert status == 415, answer
    assert_status(answer, 415, "UnsupportedMediaType")


def test_unknown_content_type_is_415(api):
    status, _, answer = api.request("POST", PODS, "hello", content_type="text/plain")
    assert status == 415, answer
    assert_status(answer, 415, "UnsupportedMediaType")


def test_dry_run_create_stores_nothing(api):
    name = unique("dry")
    status, _, answer = api.request("POST", PODS + "?dryRun=All", pod(name))
    assert status == 201, answer
    assert answer["metadata"]["name"] == name
    got, _, _ = api.request("GET", f"{PODS}/{name}")
    assert got == 404
    status, _, listing = api.request("GET", PODS)
    assert name not in [p["metadata"]["name"] for p in listing["items"]]


def test_bogus_dry_run_is_400(api):
    status, _, answer = api.request("POST", PODS + "?dryRun=Maybe", pod(unique("dry")))
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


# -- patches ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def patch_target(api) -> str:
    name = unique("patchme")
    status, _, body = api.request("POST", PODS, pod(name, labels={"a": "1"}))
    assert status == 201, body
    return name


def test_unsupported_patch_content_type_is_415(api, patch_target):
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}",
                                    {"metadata": {"labels": {"b": "2"}}},
                                    content_type="application/json")
    assert status == 415, answer
    assert_status(answer, 415, "UnsupportedMediaType")


@pytest.mark.parametrize("document, codes", [
    ('[{"op": "add", "path": "/metadata/labels/x"', (400,)),
    ('{"op": "add"}', (400, 422)),
    ('[{"op": "frobnicate", "path": "/metadata/labels/x", "value": "1"}]', (400, 422)),
    ('[{"op": "replace", "path": "/spec/nope/deeper", "value": "1"}]', (400, 422)),
    ('[{"op": "test", "path": "/metadata/labels/a", "value": "2"}]', (400, 422)),
    ('[{"op": "remove", "path": "/metadata/labels/missing"}]', (400, 422)),
], ids=["truncated", "not-a-list", "bad-op", "missing-parent", "failed-test", "remove-missing"])
def test_bad_json_patch_is_rejected(api, patch_target, document, codes):
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}", document,
                                    content_type="application/json-patch+json")
    assert status in codes, answer
    assert answer["kind"] == "Status" and answer["code"] == status


def test_malformed_merge_patch_is_400(api, patch_target):
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}", "{not json",
                                    content_type="application/merge-patch+json")
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


def test_merge_patch_making_the_pod_invalid_is_422(api, patch_target):
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}",
                                    {"metadata": {"labels": {"bad key": "v"}}},
                                    content_type="application/merge-patch+json")
    assert status == 422, answer
    assert_status(answer, 422, "Invalid")
    assert "metadata.labels" in [c["field"] for c in answer["details"]["causes"]]


def test_patch_changing_an_immutable_field_is_422(api, patch_target):
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}",
                                    {"spec": {"restartPolicy": "Never"}},
                                    content_type="application/merge-patch+json")
    assert status == 422, answer
    assert_status(answer, 422, "Invalid")
    assert [c["field"] for c in answer["details"]["causes"]] == ["spec"]


def test_patch_of_a_missing_pod_is_404(api):
    status, _, answer = api.request("PATCH", f"{PODS}/{unique('ghost')}", {"metadata": {}},
                                    content_type="application/merge-patch+json")
    assert status == 404, answer
    assert_status(answer, 404, "NotFound")


def test_server_side_apply_is_answered_not_500(api, patch_target):
    status, _, answer = api.request("PATCH", f"{PODS}/{patch_target}?fieldManager=t",
                                    "metadata:\n  labels:\n    x: y\n",
                                    content_type="application/apply-patch+yaml")
    assert status < 500
    assert isinstance(answer, dict) and answer.get("kind") in ("Status", "Pod"), answer


# -- paths and queries -----------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/default/widgets",
    "/api/v1/namespaces/default/widgets/x",
    "/apis/example.com/v1/things",
    "/api/v2/pods",
    "/apis/coordination.k8s.io/v9/leases",
])
def test_unknown_resource_is_404_status(api, path):
    status, _, answer = api.request("GET", path)
    assert status == 404, answer
    assert answer["kind"] == "Status" and answer["code"] == 404, answer
    assert answer["reason"] == "NotFound"


def test_unsupported_subresource_is_404(api, patch_target):
    status, _, answer = api.request("GET", f"{PODS}/{patch_target}/frobnicate")
    assert status == 404, answer
    assert answer["kind"] == "Status" and answer["code"] == 404, answer


def test_get_missing_pod_is_404(api):
    name = unique("nope")
    status, _, answer = api.request("GET", f"{PODS}/{name}")
    assert status == 404
    assert_status(answer, 404, "NotFound")
    assert answer["message"] == f'pods "{name}" not found'
    assert answer["details"] == {"name": name, "kind": "pods"}


@pytest.mark.parametrize("query", [
    "labelSelector=a%20in%20(", "labelSelector=%3D%3Dx", "labelSelector=a!!b",
    "labelSelector=bad%20key%3Dv", "fieldSelector=spec.nodeName%3D%3D%3Dx",
    "fieldSelector=spec.bogus%3Dx", "fieldSelector=metadata.labels%3Dx",
], ids=["label-open-paren", "label-no-key", "label-double-bang", "label-bad-key",
        "field-triple-eq", "field-unknown", "field-not-supported"])
def test_bad_selector_is_400(api, query):
    status, _, answer = api.request("GET", f"{PODS}?{query}")
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


def test_bad_selector_on_watch_is_400(api):
    status, _, answer = api.request("GET", f"{PODS}?watch=true&fieldSelector=spec.bogus%3Dx")
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


@pytest.mark.parametrize("query", [
    "limit=abc", "timeoutSeconds=abc", "resourceVersion=abc&watch=true",
], ids=["limit", "timeout", "watch-rv"])
def test_unparsable_list_option_is_400(api, query):
    status, _, answer = api.request("GET", f"{PODS}?{query}")
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


@pytest.mark.parametrize("query", [
    "resourceVersionMatch=Bogus&resourceVersion=0", "resourceVersionMatch=Exact",
    "resourceVersionMatch=Exact&resourceVersion=0",
], ids=["bogus-match", "match-without-rv", "exact-zero"])
def test_invalid_list_options_are_422(api, query):
    """ValidateListOptions: answered Invalid for kind ListOptions."""
    status, _, answer = api.request("GET", f"{PODS}?{query}")
    assert status == 422, answer
    assert_status(answer, 422, "Invalid")
    assert answer["details"]["kind"] == "ListOptions"
    assert [c["field"] for c in answer["details"]["causes"]] == ["resourceVersionMatch"]


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_watch_parameter_spellings(api, value):
    """Any watch value but "false"/"0" starts a watch (the Python client sends "True")."""
    tag = unique("wv")
    status, _, listing = api.request("GET", f"{PODS}?labelSelector=suite%3D{tag}")
    name = unique("wv")
    created, _, _ = api.request("POST", PODS, pod(name, labels={"suite": tag}))
    assert created == 201
    status, headers, answer = api.request(
        "GET", f"{PODS}?labelSelector=suite%3D{tag}&watch={value}&timeoutSeconds=1"
        f"&resourceVersion={listing['metadata']['resourceVersion']}")
    assert status == 200
    assert isinstance(answer, (bytes, dict)), answer
    first = json.loads(answer.splitlines()[0]) if isinstance(answer, bytes) else answer
    assert first.get("type") == "ADDED", first
    assert first["object"]["metadata"]["name"] == name


def test_post_to_a_named_pod_is_405(api, patch_target):
    status, _, answer = api.request("POST", f"{PODS}/{patch_target}", pod(patch_target))
    assert status == 405, answer
    assert answer["kind"] == "Status" and answer["reason"] == "MethodNotAllowed"


def test_create_in_a_missing_namespace_is_404(api):
    ns = unique("nons")
    status, _, answer = api.request("POST", f"/api/v1/namespaces/{ns}/pods", pod(unique()))
    assert status == 404, answer
    assert_status(answer, 404, "NotFound")
    assert answer["message"] == f'namespaces "{ns}" not found'


def test_update_with_mismatched_name_is_400(api, patch_target):
    status, _, current = api.request("GET", f"{PODS}/{patch_target}")
    current["metadata"]["name"] = "someone-else"
    status, _, answer = api.request("PUT", f"{PODS}/{patch_target}", current)
    assert status == 400, answer
    assert_status(answer, 400, "BadRequest")


def test_update_with_bad_resource_version_is_4xx(api, patch_target):
    status, _, current = api.request("GET", f"{PODS}/{patch_target}")
    current["metadata"]["resourceVersion"] = "not-a-number"
    status, _, answer = api.request("PUT", f"{PODS}/{patch_target}", current)
    assert 400 <= status < 500, answer
    assert answer["kind"] == "Status"


# -- the end: nothing broke ------------------------------------------------------------------

def test_zz_no_5xx_and_the_server_still_serves(api, baseline):
    assert RESPONSE_CODES, "no requests recorded"
    server_errors = [entry for entry in RESPONSE_CODES if entry[2] >= 500]
    assert not server_errors, server_errors
    status, _, listing = api.request("GET", PODS)
    assert status == 200
    assert listing["kind"] == "PodList"
    status, _, now = api.request("GET", f"{PODS}/baseline-pod")
    assert status == 200
    assert now == baseline
