"""Environment variables from the downward API, ConfigMaps and Secrets on the real agent,
through the real kubectl: every fieldRef, resourceFieldRef with divisors and the node
allocatable fallback, configMapKeyRef / secretKeyRef and envFrom with prefix; a missing
ConfigMap or key gives CreateContainerConfigError with Kubernetes' message and the pod starts
within seconds of `kubectl create configmap`; envFrom keys are taken as Kubernetes 1.32 takes
them (no InvalidEnvironmentVariableNames event any more).

Each container prints its environment (from /proc) then `END`; names are unique per test.
"""

from __future__ import annotations

import json
import re

from manifests import busybox, pod
from podcheck import events, pod_json, status_column, unique

# the environment the container's process (pid 1 of its own pid namespace) got: `env` in a
# shell would drop the names that are no shell variables, such as "app.mode"
PRINT_ENV = "tr '\\0' '\\n' < /proc/1/environ; echo END; sleep 3600"




def printed_env(cluster, wait, name: str, container: str = "c") -> dict[str, str]:
    """The environment the container printed (`KEY=VALUE` lines of `kubectl logs`)."""
    def logs() -> str | None:
        out = cluster.kubectl("logs", name, "-c", container, check=False).stdout
        return out if out.endswith("END\n") else None
    text = wait(logs, timeout=90, message=f"{name}: no environment printed")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)




def field_env(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def resource_env(name: str, resource: str, divisor: str, container: str = "") -> dict:
    ref = {"resource": resource, "divisor": divisor}
    if container:
        ref["containerName"] = container
    return {"name": name, "valueFrom": {"resourceFieldRef": ref}}


def key_env(name: str, kind: str, source: str, key: str, optional: bool = False) -> dict:
    return {"name": name, "valueFrom": {kind: {"name": source, "key": key,
                                               "optional": optional}}}


def delete(cluster, *objects: str) -> None:
    cluster.kubectl("delete", *objects, "--ignore-not-found", "--timeout=60s")


def test_downward_api_fields_and_resources(cluster, wait):
    name = unique("env-downward")
    fields = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
              "POD_UID": "metadata.uid", "APP": "metadata.labels['app']",
              "NOTE": "metadata.annotations['example.com/note']",
              "NODE": "spec.nodeName", "SA": "spec.serviceAccountName",
              "HOST_IP": "status.hostIP", "HOST_IPS": "status.hostIPs",
              "POD_IP": "status.podIP", "POD_IPS": "status.podIPs"}
    env = [field_env(k, v) for k, v in fields.items()] + [
        resource_env("CPU_MILLI", "limits.cpu", "1m"),
        resource_env("CPU", "limits.cpu", "1"),
        resource_env("MEM_MI", "limits.memory", "1Mi"),
        resource_env("REQ_CPU", "requests.cpu", "1m"),
        resource_env("SIDE_MEM_KI", "limits.memory", "1Ki", container="side"),
        resource_env("SIDE_CPU_MILLI", "limits.cpu", "1m", container="side")]
    manifest = pod(name, cluster.node, [
        busybox("c", PRINT_ENV, env=env, resources={"limits": {"cpu": "250m",
                                                               "memory": "64Mi"}}),
        busybox("side", "sleep 3600")])
    manifest["metadata"]["labels"] = {"app": "downward"}
    manifest["metadata"]["annotations"] = {"example.com/note": "hello there"}
    cluster.apply(json.dumps(manifest))
    got = printed_env(cluster, wait, name)
    live = pod_json(cluster, name)
    status = live["status"]
    assert {k: got.get(k) for k in fields} == {
        "POD_NAME": name, "POD_NAMESPACE": "default", "POD_UID": live["metadata"]["uid"],
        "APP": "downward", "NOTE": "hello there", "NODE": cluster.node,
        "SA": live["spec"].get("serviceAccountName", ""),
        "HOST_IP": status["hostIP"],
        "HOST_IPS": ",".join(i["ip"] for i in status["hostIPs"]),
        "POD_IP": status["podIP"], "POD_IPS": ",".join(i["ip"] for i in status["podIPs"])}
    assert status["podIP"] and status["hostIP"]
    # limits 250m / 64Mi (requests default to limits); "side" sets no limit: node allocatable
    node = json.loads(cluster.kubectl("get", "node", cluster.node, "-o", "json").stdout)
    allocatable = node["status"]["allocatable"]
    assert allocatable["memory"].endswith("Ki")
    assert {k: got.get(k) for k in ("CPU_MILLI", "CPU", "MEM_MI", "REQ_CPU", "SIDE_MEM_KI",
                                    "SIDE_CPU_MILLI")} == {
        "CPU_MILLI": "250", "CPU": "1", "MEM_MI": "64", "REQ_CPU": "250",
        "SIDE_MEM_KI": allocatable["memory"][:-2],
        "SIDE_CPU_MILLI": str(int(allocatable["cpu"]) * 1000)}
    delete(cluster, "pod", name)


def test_config_maps_and_secrets_as_env_and_env_from(cluster, wait):
    name, cm, secret = unique("env-sources"), unique("cfg"), unique("creds")
    cluster.kubectl("create", "configmap", cm, "--from-literal=MODE=fast",
                    "--from-literal=LEVEL=3", "--from-literal=app.mode=dotted")
    cluster.kubectl("create", "secret", "generic", secret, "--from-literal=PASSWORD=s3cr3t",
                    "--from-literal=USER=admin")
    env = [key_env("MODE_FROM_CM", "configMapKeyRef", cm, "MODE"),
           key_env("PASS_FROM_SECRET", "secretKeyRef", secret, "PASSWORD"),
           {"name": "LEVEL", "value": "env-wins"},
           {"name": "URL", "value": "$(CFG_MODE)://$(SEC_USER):$(PASSWORD)@db"},
           key_env("NO_CM", "configMapKeyRef", unique("absent"), "k", optional=True),
           key_env("NO_KEY", "secretKeyRef", secret, "absent", optional=True)]
    env_from = [{"configMapRef": {"name": cm}},
                {"configMapRef": {"name": cm}, "prefix": "CFG_"},
                {"secretRef": {"name": secret}},
                {"secretRef": {"name": secret}, "prefix": "SEC_"},
                {"secretRef": {"name": unique("absent"), "optional": True}}]
    cluster.apply(json.dumps(pod(name, cluster.node, [busybox("c", PRINT_ENV, env=env,
                                                              envFrom=env_from)])))
    got = printed_env(cluster, wait, name)
    expected = {"MODE_FROM_CM": "fast", "PASS_FROM_SECRET": "s3cr3t", "LEVEL": "env-wins",
                "MODE": "fast", "app.mode": "dotted", "CFG_MODE": "fast", "CFG_LEVEL": "3",
                "CFG_app.mode": "dotted", "PASSWORD": "s3cr3t", "USER": "admin",
                "SEC_PASSWORD": "s3cr3t", "SEC_USER": "admin", "URL": "fast://admin:s3cr3t@db"}
    assert {k: got.get(k) for k in expected} == expected
    assert "NO_CM" not in got and "NO_KEY" not in got
    # Kubernetes 1.32 takes every key (relaxed names): no key is skipped, no event about it
    assert not [e for e in events(cluster, name) if "Invalid" in e[1]]
    delete(cluster, "pod", name)
    delete(cluster, "configmap", cm)
    delete(cluster, "secret", secret)


def _waiting(cluster, name: str, container: str = "c") -> dict | None:
    statuses = pod_json(cluster, name).get("status", {}).get("containerStatuses") or []
    state = next((s["state"] for s in statuses if s["name"] == container), {})
    waiting = state.get("waiting")
    return waiting if waiting and waiting.get("reason") == "CreateContainerConfigError" \
        else None


def test_a_missing_config_map_then_kubectl_create_configmap(cluster, wait):
    name, cm = unique("env-missing"), unique("later")
    cluster.apply(json.dumps(pod(name, cluster.node, [busybox(
        "c", PRINT_ENV, env=[key_env("MODE", "configMapKeyRef", cm, "mode")])])))
    message = f'configmap "{cm}" not found'
    waiting = wait(lambda: _waiting(cluster, name), timeout=60)
    assert waiting["message"] == message
    assert status_column(cluster, name) == "CreateContainerConfigError"
    wait(lambda: ("Warning", "Failed", f"Error: {message}") in events(cluster, name),
         timeout=30)
    described = cluster.kubectl("describe", "pod", name).stdout
    assert re.search(r"State:\s+Waiting\n\s+Reason:\s+CreateContainerConfigError\n",
                     described), described
    assert re.search(rf"Warning\s+Failed\s+.*Error: {re.escape(message)}", described)
    # the agent retries within seconds: well before its periodic resync (30 s)
    cluster.kubectl("create", "configmap", cm, "--from-literal=mode=fast")
    wait(lambda: status_column(cluster, name) == "Running", timeout=20,
         message="the pod did not start within 20 s of its ConfigMap")
    assert printed_env(cluster, wait, name)["MODE"] == "fast"
    delete(cluster, "pod", name)
    delete(cluster, "configmap", cm)


def test_missing_keys_name_their_config_map_or_secret(cluster, wait):
    name, cm, secret = unique("env-nokey"), unique("cfg"), unique("creds")
    cluster.kubectl("create", "configmap", cm, "--from-literal=other=x")
    cluster.kubectl("create", "secret", "generic", secret, "--from-literal=user=admin")
    cluster.apply(json.dumps(pod(name, cluster.node, [
        busybox("c", PRINT_ENV, envFrom=[{"secretRef": {"name": secret}}],
                env=[key_env("PASS", "secretKeyRef", secret, "password")]),
        busybox("d", PRINT_ENV, env=[key_env("MODE", "configMapKeyRef", cm, "mode")])])))
    assert wait(lambda: _waiting(cluster, name), timeout=60)["message"] == \
        f"couldn't find key password in Secret default/{secret}"
    assert wait(lambda: _waiting(cluster, name, "d"), timeout=60)["message"] == \
        f"couldn't find key mode in ConfigMap default/{cm}"
    assert status_column(cluster, name) == "CreateContainerConfigError"
    delete(cluster, "pod", name)
    delete(cluster, "configmap", cm)
    delete(cluster, "secret", secret)
