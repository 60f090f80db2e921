"""Ephemeral containers with the real kubectl: ``kubectl debug -it POD --image=busybox
--target=C`` (driven through a pseudo-terminal, as a user's terminal), the
``pods/ephemeralcontainers`` subresource and its refusals.

The target container runs a command with a marker no other process has; the debugger's
``ps`` must list it, which only works inside the target's PID namespace (the pod does not
share one). ``busybox`` resolves to the test registry (the node mirrors docker.io).
"""

from __future__ import annotations

import json
import secrets
import signal

import pytest

from streams_util import Pods, busybox, kubectl, kubectl_pty, pod, tag


@pytest.fixture(scope="module")
def pods(cluster):
    t = tag()
    names = {"target": f"debug-target-{t}", "edit": f"debug-edit-{t}"}
    marker = f"sleep {secrets.randbelow(900000) + 3100000}"  # `ps` shows the target's process
    manifests = [
        pod(names["target"], cluster.node, [
            busybox("app", f"trap 'exit 0' TERM; exec sh -c 'exec {marker}' & wait"),
            busybox("other", "trap 'exit 0' TERM; sleep 3600 & wait")]),
        pod(names["edit"], cluster.node, [
            busybox("app", "trap 'exit 0' TERM; sleep 3600 & wait")]),
    ]
    p = Pods(cluster, manifests)
    p.names, p.tag, p.marker = names, t, marker
    return p


def ephemeral_status(pods, name: str, container: str) -> dict | None:
    p = pods.get(name) or {}
    return next((s for s in (p.get("status") or {}).get("ephemeralContainerStatuses") or []
                 if s["name"] == container), None)


def test_kubectl_debug_it_sees_the_target_processes(pods):
    name, t = pods.names["target"], pods.tag
    pods.wait_running(name)
    with kubectl_pty(pods.cluster, "debug", "-it", name, "--image=busybox", "--target=app",
                     "--container", f"dbg-{t}", "--", "sh") as term:
        term.expect(b"If you don't see a command prompt", timeout=90)
        term.write(f"ps; echo done-$((40+2))-{t}\r".encode())
        term.expect(f"done-42-{t}".encode(), timeout=30)
        listed = term.seen.decode(errors="replace").split("PID")[-1]
        assert pods.marker in listed, listed  # the target's process ...
        assert "sleep 3600" not in listed, listed  # ... and not the other container's
        term.write(b"exit\r")
        assert term.wait(30) == 0
    status = pods.wait(lambda: ephemeral_status(pods, name, f"dbg-{t}"), 30, "no status", name)
    assert status["ready"] is False and "started" not in status, status
    # the shell exited: terminated, and never restarted
    done = pods.wait(lambda: (s := ephemeral_status(pods, name, f"dbg-{t}")) and
                     "terminated" in s["state"] and s, 60, "debugger not terminated", name)
    assert done["state"]["terminated"]["exitCode"] == 0 and done["restartCount"] == 0, done
    p = pods.get(name)
    assert p["status"]["phase"] == "Running"
    assert [c["name"] for c in p["spec"]["ephemeralContainers"]] == [f"dbg-{t}"]
    assert p["spec"]["ephemeralContainers"][0]["targetContainerName"] == "app"


def test_events_describe_and_logs_of_the_debugger(pods):
    name, t = pods.names["target"], pods.tag
    pods.wait(lambda: (s := ephemeral_status(pods, name, f"dbg-{t}")) and
              "terminated" in s["state"], 120, "run test_kubectl_debug_it first", name)
    events = json.loads(pods.cluster.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json").stdout)
    paths = {(e["reason"], e["involvedObject"].get("fieldPath")) for e in events["items"]}
    path = f"spec.ephemeralContainers{{dbg-{t}}}"
    for reason in ("Pulling", "Pulled", "Created", "Started"):
        assert (reason, path) in paths, sorted(paths)
    described = pods.cluster.kubectl("describe", "pod", name).stdout
    assert "Ephemeral Containers:" in described and f"dbg-{t}:" in described, described
    logs = kubectl(pods.cluster, "logs", name, "-c", f"dbg-{t}")
    assert logs.returncode == 0 and f"done-42-{t}".encode() in logs.stdout, logs


def test_kubectl_debug_without_attaching_and_its_logs(pods):
    """The recommended ``--profile=general`` (adds SYS_PTRACE); PID 1 of the debugger's PID
    namespace is the target's main process."""
    name, t = pods.names["target"], pods.tag
    pods.wait_running(name)
    result = kubectl(pods.cluster, "debug", name, "--image=busybox", "--target=app",
                     "--profile=general", "-c", f"peek-{t}", "--",
                     "sh", "-c", "tr '\\0' ' ' </proc/1/cmdline; echo; grep CapEff "
                                 "/proc/self/status")
    assert result.returncode == 0, result
    status = pods.wait(lambda: (s := ephemeral_status(pods, name, f"peek-{t}")) and
                       "terminated" in s["state"] and s, 90, "peek not terminated", name)
    assert status["state"]["terminated"]["exitCode"] == 0, status
    logs = kubectl(pods.cluster, "logs", name, "-c", f"peek-{t}")
    assert logs.returncode == 0, logs
    first = logs.stdout.decode().splitlines()[0]
    assert first.startswith("sh -c trap") and pods.marker in first, logs.stdout
    cap_eff = int(logs.stdout.decode().split("CapEff:")[1].split()[0], 16)
    assert cap_eff & (1 << 19), logs.stdout  # CAP_SYS_PTRACE


def test_attach_to_a_running_ephemeral_container(pods):
    name, t = pods.names["edit"], pods.tag
    pods.wait_running(name)
    patch = {"spec": {"ephemeralContainers": [
        {"name": "attach-me", "image": "busybox", "command": ["sh"], "stdin": True,
         "tty": True, "targetContainerName": "app"}]}}
    result = kubectl(pods.cluster, "patch", "pod", name, "--subresource=ephemeralcontainers",
                     "--type=strategic", "-p", json.dumps(patch))
    assert result.returncode == 0, result
    pods.wait(lambda: (s := ephemeral_status(pods, name, "attach-me")) and
              "running" in s["state"], 90, "ephemeral container not running", name)
    with kubectl_pty(pods.cluster, "attach", "-it", name, "-c", "attach-me") as term:
        term.write(f"echo attached-$((6*7))-{t}\r".encode())
        term.expect(f"attached-42-{t}".encode(), timeout=30)
        term.close(signal.SIGKILL)
    assert "running" in ephemeral_status(pods, name, "attach-me")["state"]


def test_changing_or_removing_an_ephemeral_container_is_refused(pods):
    name = pods.names["edit"]
    pods.wait(lambda: ephemeral_status(pods, name, "attach-me"), 90,
              "run test_attach_to_a_running_ephemeral_container first", name)
    change = {"spec": {"ephemeralContainers": [{"name": "attach-me", "image": "nginx"}]}}
    changed = kubectl(pods.cluster, "patch", "pod", name, "--subresource=ephemeralcontainers",
                      "--type=strategic", "-p", json.dumps(change))
    assert changed.returncode != 0
    assert (f'The Pod "{name}" is invalid: spec.ephemeralContainers: Forbidden: existing '
            f'ephemeral containers "attach-me" may not be changed').encode() in changed.stderr, \
        changed.stderr
    removed = kubectl(pods.cluster, "patch", "pod", name, "--subresource=ephemeralcontainers",
                      "--type=merge", "-p", '{"spec": {"ephemeralContainers": null}}')
    assert removed.returncode != 0
    assert (f'The Pod "{name}" is invalid: spec.ephemeralContainers: Forbidden: existing '
            f'ephemeral containers "attach-me" may not be removed').encode() in removed.stderr, \
        removed.stderr
    # nor through an ordinary update of the pod
    add = {"spec": {"ephemeralContainers": [{"name": "sneaky", "image": "busybox"}]}}
    plain = kubectl(pods.cluster, "patch", "pod", name, "--type=strategic", "-p", json.dumps(add))
    assert plain.returncode != 0
    assert f'The Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields ' \
        f"other than".encode() in plain.stderr, plain.stderr
    p = pods.get(name)
    assert [c["image"] for c in p["spec"]["ephemeralContainers"]] == ["busybox"]


@pytest.mark.parametrize("container, field, message", [
    ({"name": "e1", "image": "busybox", "ports": [{"containerPort": 80}]},
     "ports", "Forbidden: cannot be set for an Ephemeral Container"),
    ({"name": "app", "image": "busybox"},
     "name", 'Duplicate value: "app"'),
    ({"name": "e2", "image": "busybox", "targetContainerName": "nope"},
     "targetContainerName", 'Not found: "nope"'),
])
def test_bad_ephemeral_containers_are_refused(pods, container, field, message):
    name = pods.names["target"]
    pods.wait_running(name)
    index = len(pods.get(name)["spec"].get("ephemeralContainers") or [])  # merged after them
    patch = {"spec": {"ephemeralContainers": [container]}}
    result = kubectl(pods.cluster, "patch", "pod", name, "--subresource=ephemeralcontainers",
                     "--type=strategic", "-p", json.dumps(patch))
    assert result.returncode != 0
    path = f"spec.ephemeralContainers[{index}].{field}"
    assert f'The Pod "{name}" is invalid: {path}: {message}'.encode() in result.stderr, \
        result.stderr


def test_ephemeral_containers_on_create_are_refused(pods):
    t = pods.tag
    manifest = pod(f"debug-create-{t}", pods.cluster.node, [busybox("app", "sleep 1")],
                   ephemeralContainers=[{"name": "dbg", "image": "busybox"}])
    result = kubectl(pods.cluster, "create", "-f", "-", input=json.dumps(manifest).encode())
    assert result.returncode != 0
    assert b"spec.ephemeralContainers: Forbidden: cannot be set on create" in result.stderr, \
        result.stderr


def test_a_pod_not_yet_scheduled_takes_ephemeral_containers(pods):
    """As in Kubernetes, the API takes them at once; they would start once the pod runs."""
    t = pods.tag
    name = f"debug-pending-{t}"
    manifest = pod(name, pods.cluster.node, [busybox("app", "sleep 3600")])
    del manifest["spec"]["nodeName"]
    manifest["spec"]["nodeSelector"] = {"no-such-label": t}
    created = kubectl(pods.cluster, "create", "-f", "-", input=json.dumps(manifest).encode())
    assert created.returncode == 0, created
    try:
        patch = {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}
        result = kubectl(pods.cluster, "patch", "pod", name,
                         "--subresource=ephemeralcontainers", "-p", json.dumps(patch),
                         "-o", "json")
        assert result.returncode == 0, result
        stored = json.loads(result.stdout)
        assert stored["spec"]["ephemeralContainers"][0]["imagePullPolicy"] == "Always"
        assert stored["spec"]["ephemeralContainers"][0]["terminationMessagePath"] == \
            "/dev/termination-log"
        assert stored["status"]["phase"] == "Pending" and not stored["spec"].get("nodeName")
    finally:
        kubectl(pods.cluster, "delete", "pod", name, "--wait=false")
