"""The steps of ``podling demo``: each shows one feature of the seed's examples with the real
kubectl, says what to look at, and checks that podling shows it (a ✓ or a ✗ with the
reason). The tour goes on after a failed check; :func:`run_tour` returns how many failed.

Every step reads the cluster through :meth:`DemoCluster.kubectl` and prints through a
:class:`Narrator`; nothing here starts or stops processes.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Callable

from .cluster import DemoCluster, DemoError
from .narrator import Narrator

SEED_PODS = ("aliases", "host-hooks", "pinned-web", "selector-web", "shared-pid")
WAIT_TIMEOUT = 60.0
UNMATCHED = "needs-ssd"  # the demo's own pod whose selector matches no node at first
FAILED_SCHEDULING = ("0/3 nodes are available: 3 node(s) didn't match Pod's node "
                     "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption "
                     "is not helpful for scheduling.")


class Tour:
    """The steps, in order, against one cluster."""

    def __init__(self, cluster: DemoCluster, out: Narrator, seed_dir: str) -> None:
        self.cluster, self.out, self.seed_dir = cluster, out, seed_dir

    def kubectl(self, *args: str, show: bool = True, **kw: Any) -> str:
        text = self.cluster.kubectl(*args, **kw)
        if show:
            self.out.command(["kubectl", *args], text)
        return text

    def pod(self, name: str) -> dict[str, Any]:
        return json.loads(self.cluster.kubectl("get", "pod", name, "-o", "json"))

    def wait_phase(self, name: str, *phases: str, timeout: float = WAIT_TIMEOUT
                   ) -> dict[str, Any]:
        """The pod once its phase is one of ``phases``; DemoError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod(name)
            if pod.get("status", {}).get("phase") in phases:
                return pod
            if time.monotonic() > deadline:
                status = pod.get("status", {})
                raise DemoError(f"pod {name} is {status.get('phase')}, not {'/'.join(phases)}"
                                f" after {timeout:g}s: {_waiting_reasons(status)}")
            time.sleep(0.25)

    def events(self, name: str) -> list[dict[str, Any]]:
        return json.loads(self.cluster.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={name}",
            "-o", "json"))["items"]

    # -- the steps -----------------------------------------------------------------------

    def nodes(self) -> None:
        self.out.step("Three nodes on this machine",
                      "A server with its local agent (172.31.2.11) and two agents; each node "
                      "has its own pod CIDR, bridge and data directory.")
        self.kubectl("get", "nodes", "-o", "wide")
        self.out.check(len(self.cluster.ready_nodes()) == 3, "three nodes are Ready")

    def apply_seed(self) -> None:
        self.out.step("The seed's pods",
                      "kubectl apply of examples/seed/: every pod is scheduled or bound and "
                      "runs; no registry is involved (next step).")
        self.kubectl("apply", "-f", self.seed_dir)
        for name in SEED_PODS:
            done = ("Succeeded",) if name == "aliases" else ("Running",)
            self.wait_phase(name, *done)
        self.kubectl("get", "pods", "-o", "wide")
        self.out.check(True, "every seed pod reached its state (aliases: Completed)")

    def shared_pid(self) -> None:
        self.out.step("shareProcessNamespace: the pause is PID 1",
                      "In shared-pid, the shell container sees the pause process (catatonit, "
                      "mounted at /pause) as PID 1 and nginx's processes next to its own.")
        text = self.kubectl("exec", "shared-pid", "-c", "shell", "--", "ps", "-o", "pid,args")
        first = _ps_rows(text).get(1, "")
        self.out.check(first.startswith("/pause"), f"PID 1 is the pause ({first or 'none'})")
        self.out.check("nginx" in text, "nginx's processes are visible from the shell")

    def shared_network(self) -> None:
        self.out.step("One network namespace per pod",
                      "Every process of shared-pid (pause, nginx, shell) is in the same "
                      "network namespace: the one the pause owns. The pod has one IP.")
        text = self.kubectl("exec", "shared-pid", "-c", "shell", "--", "sh", "-c",
                            "for p in /proc/[0-9]*; do readlink $p/ns/net; done | sort | "
                            "uniq -c")
        namespaces = [line for line in text.splitlines() if "net:[" in line]
        self.out.check(len(namespaces) == 1, "one network namespace for all its processes")
        ip = self.pod("shared-pid").get("status", {}).get("podIP", "")
        self.out.check(bool(ip), f"the pod's IP: {ip}")

    def host_aliases(self) -> None:
        self.out.step("hostAliases in the managed /etc/hosts",
                      "The aliases pod printed its /etc/hosts: the kubelet-managed header, "
                      "its own IP, then the hostAliases section.")
        text = self.kubectl("logs", "aliases")
        self.out.check("# Kubernetes-managed hosts file." in text, "the managed header")
        self.out.check(bool(re.search(r"^127\.0\.0\.1\tfoo\.local\tbar\.local$", text, re.M)),
                       "the aliases of 127.0.0.1")
        self.out.check(bool(re.search(r"^10\.1\.2\.3\tfoo\.remote\tbar\.remote$", text, re.M)),
                       "the aliases of 10.1.2.3")

    def node_selector(self) -> None:
        self.out.step("nodeSelector",
                      "selector-web asks for kubernetes.io/hostname=172.31.2.12 and runs there.")
        node = self.pod("selector-web")["spec"].get("nodeName", "")
        self.kubectl("get", "pod", "selector-web", "-o", "wide")
        self.out.check(node == "172.31.2.12", f"selector-web runs on {node or 'no node'}")

    def node_mirror(self) -> None:
        self.out.step("Images come from the first node",
                      "Only 172.31.2.11 had busybox and nginx in its store. Every node serves "
                      "its images to the others, and the nodes' registries.yaml names no other "
                      "registry: selector-web's nginx on 172.31.2.12 came from 172.31.2.11.")
        self.kubectl("get", "events", "--field-selector", "involvedObject.name=selector-web")
        pulled = [e for e in self.events("selector-web") if e.get("reason") == "Pulled"]
        self.out.check(bool(pulled), "172.31.2.12 pulled nginx from 172.31.2.11")

    def unmatched_selector(self) -> None:
        self.out.step("A selector that matches no node",
                      "A pod that needs disktype=ssd stays Pending with a FailedScheduling "
                      "event, until a node gets the label.")
        self.kubectl("run", UNMATCHED, "--image=busybox", "--restart=Never",
                     "--overrides", json.dumps({"spec": {"nodeSelector": {"disktype": "ssd"},
                                                         "terminationGracePeriodSeconds": 1}}),
                     "--", "sleep", "3600")
        message = self._wait_event(UNMATCHED, "FailedScheduling")
        self.kubectl("get", "events", "--field-selector", f"involvedObject.name={UNMATCHED}")
        self.out.check(message == FAILED_SCHEDULING, "the scheduler's message, word for word")
        self.kubectl("label", "node", "172.31.2.13", "disktype=ssd")
        node = self.wait_phase(UNMATCHED, "Running")["spec"].get("nodeName")
        self.kubectl("get", "pod", UNMATCHED, "-o", "wide")
        self.out.check(node == "172.31.2.13", f"after the label it runs on {node}")

    def _wait_event(self, name: str, reason: str) -> str:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            for event in self.events(name):
                if event.get("reason") == reason:
                    return str(event.get("message", ""))
            time.sleep(0.25)
        raise DemoError(f"no {reason} event for {name} in {WAIT_TIMEOUT:g}s")

    def node_name(self) -> None:
        self.out.step("nodeName bypasses the scheduler",
                      "pinned-web names its node: it is bound without the scheduler, so its "
                      "events have no Scheduled event.")
        reasons = [e.get("reason") for e in self.events("pinned-web")]
        self.kubectl("get", "events", "--field-selector", "involvedObject.name=pinned-web")
        node = self.pod("pinned-web")["spec"].get("nodeName")
        self.out.check(node == "172.31.2.11", f"pinned-web runs on {node}")
        self.out.check("Scheduled" not in reasons, "no Scheduled event")

    def host_namespaces(self) -> None:
        self.out.step("hostNetwork, hostPID, hostIPC",
                      "host-hooks shares the node's network, PID and IPC namespaces: its IP "
                      "is the node's, and it sees the host's processes.")
        pod = self.pod("host-hooks")
        status = pod.get("status", {})
        self.kubectl("get", "pod", "host-hooks", "-o", "wide")
        self.out.check(status.get("podIP") == status.get("hostIP"),
                       f"pod IP {status.get('podIP')} is the node's IP")
        text = self.kubectl("exec", "host-hooks", "--", "sh", "-c",
                            "for n in pid net ipc; do readlink /proc/self/ns/$n; done")
        host = [_host_ns(kind) for kind in ("pid", "net", "ipc")]
        self.out.check(text.split() == host, "the same namespaces as the host")

    def hooks(self) -> None:
        self.out.step("postStart and preStop",
                      "host-hooks' postStart wrote /tmp/poststart right after the container "
                      "started; its preStop (sleep 2) holds the deletion for about 2 s.")
        text = self.kubectl("exec", "host-hooks", "--", "cat", "/tmp/poststart")
        self.out.check(text.strip() == "started", "postStart ran")
        began = time.monotonic()
        self.kubectl("delete", "pod", "host-hooks", "--wait=true", "--timeout=30s")
        took = time.monotonic() - began
        self.out.check(took >= 2.0, f"the delete waited for preStop: {took:.1f} s")

    def pull_policy(self) -> None:
        self.out.step("imagePullPolicy",
                      "Defaulted by tag as in Kubernetes: no tag or :latest gives Always, "
                      "any other tag IfNotPresent; Never uses only what the node has.")
        policies = {c["name"]: c.get("imagePullPolicy")
                    for c in self.pod("shared-pid")["spec"]["containers"]}
        self.out.command(["kubectl", "get", "pod", "shared-pid", "-o",
                          "jsonpath={.spec.containers[*].imagePullPolicy}"],
                         " ".join(f"{k}={v}" for k, v in policies.items()))
        self.out.check(set(policies.values()) == {"Always"}, "untagged images: Always")
        self.kubectl("run", "never-pull", "--image=busybox:no-such-tag", "--restart=Never",
                     "--image-pull-policy=Never", "--", "true")
        reason = self._wait_waiting_reason("never-pull")
        self.kubectl("get", "pod", "never-pull")
        self.out.check(reason == "ErrImageNeverPull", f"a missing image with Never: {reason}")

    def _wait_waiting_reason(self, name: str) -> str:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            reasons = _waiting_reasons(self.pod(name).get("status", {}))
            if reasons:
                return reasons[0]
            time.sleep(0.25)
        return ""

    def exec_and_attach(self) -> None:
        self.out.step("kubectl exec and attach",
                      "exec runs a new process in a container; attach joins the shell "
                      "container's own terminal (its stdin and tty), where typed commands run "
                      "in the shell that started with the pod. Try `kubectl attach -it "
                      "shared-pid -c shell` on a cluster kept with --keep.")
        text = self.kubectl("exec", "shared-pid", "-c", "shell", "--", "hostname")
        self.out.check(text.strip() == "shared-pid", "exec: the pod's hostname")
        typed = "echo attached-$((6*7))\n"
        seen = self.cluster.attach("shared-pid", "shell", typed, "attached-42")
        self.out.command(["kubectl", "attach", "-i", "shared-pid", "-c", "shell"],
                         f"(typed: {typed.strip()})\n{seen}")
        self.out.check("attached-42" in seen, "attach: the shell ran what was typed")

    def describe(self) -> None:
        self.out.step("Events and kubectl describe",
                      "describe shows the pod's events as Kubernetes writes them: Scheduled by "
                      "the scheduler, then Pulling, Pulled, Created, Started by the kubelet.")
        described = self.kubectl("describe", "pod", "shared-pid", show=False)
        events = described[described.find("Events:"):]
        self.out.command(["kubectl", "describe", "pod", "shared-pid"], "…\n" + events)
        self.out.check(all(w in events for w in ("Scheduled", "Created", "Started")),
                       "the scheduler's and the kubelet's events")

    def steps(self) -> list[Callable[[], None]]:
        return [self.nodes, self.apply_seed, self.shared_pid, self.shared_network,
                self.host_aliases, self.node_selector, self.node_mirror, self.unmatched_selector,
                self.node_name, self.host_namespaces, self.hooks, self.pull_policy,
                self.exec_and_attach, self.describe]


def run_tour(cluster: DemoCluster, out: Narrator, seed_dir: str) -> int:
    """Run every step; the number of failed checks (a step that raised counts as one)."""
    for step in Tour(cluster, out, seed_dir).steps():
        try:
            step()
        except DemoError as exc:
            out.check(False, str(exc))
    return out.failures


def _ps_rows(text: str) -> dict[int, str]:
    rows = {}
    for line in text.splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit():
            rows[int(pid)] = args.strip()
    return rows


def _host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def _waiting_reasons(status: dict[str, Any]) -> list[str]:
    return [s["state"]["waiting"].get("reason", "")
            for s in status.get("containerStatuses") or []
            if "waiting" in s.get("state", {})]
