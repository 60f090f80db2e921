"""Default confinement, read from inside real containers (/proc/self/status and the masked
paths): the default capability set and nothing else, drops and adds, no_new_privs from
allowPrivilegeEscalation, masked /proc paths and a read-only /proc/sys; a privileged
container runs with every capability this host itself holds (a bit the host lacks used to
fail runc's create), nothing masked, and the host's device nodes. Sysctls: safe ones set in
the pod's namespaces, unsafe ones refused by the node. The node's --pod-max-pids; the
cgroup limits of resources, and an OOM kill reported as the kubelet does."""

from __future__ import annotations

import json

from manifests import POD_MAX_PIDS, busybox, pod

from podling.runtime.oci.bundle import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

STATUS = ("grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; "
          "echo \"timer_list:\t$(head -c 20 /proc/timer_list | wc -c)\"; "
          "(echo pod > /proc/sys/kernel/domainname) 2>/dev/null "  # UTS: the pod's own
          "&& echo \"proc_sys:\twritable\" || echo \"proc_sys:\tread-only\"; "
          "[ -c /dev/kmsg ] && echo \"kmsg:\tdevice\" || echo \"kmsg:\tabsent\"; "
          "echo done; sleep 3600")


def bits(names) -> str:
    mask = sum(1 << ALL_CAPABILITIES.index(name) for name in names)
    return f"{mask:016x}"


def host_bounding_set() -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("CapBnd:"))


def _status(cluster, wait, name: str, **container) -> dict[str, str]:
    cluster.apply(json.dumps(pod(name, cluster.node, [busybox("c", STATUS, **container)])))
    out = wait(lambda: (lambda text: text if "done" in text else "")(
        cluster.kubectl("logs", name, check=False).stdout), timeout=90)
    return dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)


def test_capabilities_no_new_privs_masked_paths_and_privileged(cluster, wait):
    names = ["conf-default", "conf-tuned", "conf-privileged"]
    try:
        default = _status(cluster, wait, "conf-default")
        assert default == {"CapEff": bits(DEFAULT_CAPABILITIES), "NoNewPrivs": "0",
                           "timer_list": "0",  # masked: /dev/null over it
                           "proc_sys": "read-only", "kmsg": "absent"}
        tuned = _status(cluster, wait, "conf-tuned", securityContext={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
        assert tuned["CapEff"] == bits(["CAP_NET_BIND_SERVICE"])
        assert tuned["NoNewPrivs"] == "1"
        privileged = _status(cluster, wait, "conf-privileged",
                             securityContext={"privileged": True})
        assert privileged["CapEff"] == host_bounding_set()
        assert privileged["timer_list"] == "20"  # nothing masked
        assert privileged["proc_sys"] == "writable"  # nothing read-only
        assert privileged["kmsg"] == "device"  # the host's device nodes
    finally:
        cluster.kubectl("delete", "pod", *names, "--ignore-not-found", "--timeout=60s")


def test_safe_sysctls_are_set_in_the_pod_and_unsafe_ones_refused(cluster, wait):
    sysctls = [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "100"},
               {"name": "kernel.shm_rmid_forced", "value": "1"}]
    script = ("echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); "
              "echo shm=$(cat /proc/sys/kernel/shm_rmid_forced); echo done; sleep 3600")
    manifest = pod("sysctl-safe", cluster.node, [busybox("c", script)],
                   securityContext={"sysctls": sysctls})
    refused = pod("sysctl-unsafe", cluster.node, [busybox("c", "sleep 3600")],
                  securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "9000"}]})
    try:
        cluster.apply(json.dumps(manifest))
        out = wait(lambda: (lambda text: text if "done" in text else "")(
            cluster.kubectl("logs", "sysctl-safe", check=False).stdout), timeout=90)
        assert "port=100\nshm=1\n" in out, out
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            assert f.read().strip() != "100"  # the pod's network namespace, not the host's
        cluster.apply(json.dumps(refused))
        status = wait(lambda: (lambda s: s if s.get("phase") == "Failed" else None)(json.loads(
            cluster.kubectl("get", "pod", "sysctl-unsafe", "-o", "json").stdout)["status"]),
            timeout=60)
        assert (status["reason"], status["message"]) == (
            "SysctlForbidden",
            'Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted')
    finally:
        cluster.kubectl("delete", "pod", "sysctl-safe", "sysctl-unsafe", "--ignore-not-found",
                        "--timeout=60s")


def test_pod_max_pids_caps_the_processes_of_a_pod(cluster, wait):
    # a subshell forks until the pod's cgroup refuses (and ends); then the processes are
    # counted with builtins only
    script = (f"(for i in $(seq {POD_MAX_PIDS + 50}); do sleep 600 & done) 2>/dev/null; "
              "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo procs=$n; echo done")
    manifest = pod("pids-cap", cluster.node, [busybox("c", script)], restartPolicy="Never")
    try:
        cluster.apply(json.dumps(manifest))
        out = wait(lambda: (lambda text: text if "done" in text else "")(
            cluster.kubectl("logs", "pids-cap", check=False).stdout), timeout=90)
        procs = int(out.split("procs=")[1].split()[0])
        # the pause process counts too; a few sleeps may already have ended
        assert POD_MAX_PIDS - 10 <= procs < POD_MAX_PIDS, out
    finally:
        cluster.kubectl("delete", "pod", "pids-cap", "--ignore-not-found", "--timeout=60s")


def test_fs_group_owns_empty_dirs_and_host_users_false_is_refused(cluster, wait):
    script = ("stat -c 'dir %g %a' /data; touch /data/f; stat -c 'file %g' /data/f; "
              "echo done; sleep 3600")
    owned = pod("fsgroup", cluster.node, [busybox("c", script, volumeMounts=[
        {"name": "data", "mountPath": "/data"}])], volumes=[{"name": "data", "emptyDir": {}}],
        securityContext={"runAsUser": 1000, "fsGroup": 2345,
                         "fsGroupChangePolicy": "OnRootMismatch"})
    userns = pod("userns", cluster.node, [busybox("c", "sleep 3600")], hostUsers=False)
    try:
        cluster.apply(json.dumps(owned))
        cluster.apply(json.dumps(userns))
        out = wait(lambda: (lambda text: text if "done" in text else "")(
            cluster.kubectl("logs", "fsgroup", check=False).stdout), timeout=90)
        assert out.split("\n")[:2] == ["dir 2345 2777", "file 2345"]

        def refusal():
            events = json.loads(cluster.kubectl(
                "get", "events", "--field-selector", "involvedObject.name=userns", "-o",
                "json").stdout)["items"]
            return [e["message"] for e in events if e["reason"] == "FailedCreatePodSandBox"]
        assert wait(refusal, timeout=60)[0] == (
            "Failed to create pod sandbox: the runtime does not support user namespaces "
            "(spec.hostUsers: false)")
        phase = json.loads(cluster.kubectl("get", "pod", "userns", "-o", "json").stdout)[
            "status"]["phase"]
        assert phase == "Pending"
    finally:
        cluster.kubectl("delete", "pod", "fsgroup", "userns", "--ignore-not-found",
                        "--timeout=60s")


LIMITS = ("if [ -f /sys/fs/cgroup/cpu.max ]; then "  # cgroup v2
          "echo \"cpu:\t$(cat /sys/fs/cgroup/cpu.max)\"; "
          "echo \"memory:\t$(cat /sys/fs/cgroup/memory.max)\"; "
          "else echo \"cpu:\t$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) "
          "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)\"; "
          "echo \"shares:\t$(cat /sys/fs/cgroup/cpu/cpu.shares)\"; "
          "echo \"memory:\t$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)\"; fi; "
          "echo done; sleep 3600")


def test_cgroup_limits_from_resources_and_an_oom_kill(cluster, wait):
    """CPU quota and shares and the memory limit are the container's cgroup's, read from
    inside; a container past its memory limit is killed by the kernel and reported as the
    kubelet does: terminated, reason OOMKilled, exit code 137."""
    limited = busybox("c", LIMITS, resources={"requests": {"cpu": "100m"},
                                              "limits": {"cpu": "250m", "memory": "32Mi"}})
    # the container's own process must be the one killed (with cgroup v1 the kernel kills
    # the one process, not the whole cgroup: a shell around it would exit 0, OOMKilled)
    hog = busybox("c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
                  resources={"limits": {"memory": "16Mi"}})
    try:
        cluster.apply(json.dumps(pod("limits", cluster.node, [limited])))
        cluster.apply(json.dumps(pod("oom", cluster.node, [hog], restartPolicy="Never")))
        out = wait(lambda: (lambda text: text if "done" in text else "")(
            cluster.kubectl("logs", "limits", check=False).stdout), timeout=90)
        seen = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
        assert (seen["cpu"], seen["memory"]) == ("25000 100000", str(32 * 1024 * 1024)), out
        assert seen.get("shares", "102") == "102"  # 100m as the kubelet converts it (v1)

        def terminated():
            status = json.loads(cluster.kubectl("get", "pod", "oom", "-o", "json").stdout)[
                "status"]
            if status.get("phase") != "Failed":
                return None
            return status["containerStatuses"][0]["state"]["terminated"]
        state = wait(terminated, timeout=90)
        assert (state["reason"], state["exitCode"]) == ("OOMKilled", 137), state
    finally:
        cluster.kubectl("delete", "pod", "limits", "oom", "--ignore-not-found",
                        "--timeout=60s")


def test_identity_fields_and_run_as_non_root_from_inside(cluster, wait):
    """runAsUser, runAsGroup, supplementalGroups and readOnlyRootFilesystem as the process
    sees them; runAsNonRoot over an image that runs as root is the kubelet's
    CreateContainerConfigError, and the container is never created."""
    script = ("echo \"uid:\t$(id -u)\"; echo \"gid:\t$(id -g)\"; echo \"groups:\t$(id -G)\"; "
              "(touch /probe 2>/dev/null && echo \"rootfs:\twritable\") || "
              "echo \"rootfs:\tread-only\"; echo done; sleep 3600")
    ids = pod("sc-ids", cluster.node, [busybox("c", script, securityContext={
        "readOnlyRootFilesystem": True})], securityContext={
        "runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]})
    root = pod("sc-nonroot", cluster.node, [busybox("c", "sleep 3600")],
               securityContext={"runAsNonRoot": True})
    try:
        cluster.apply(json.dumps(ids))
        cluster.apply(json.dumps(root))
        out = wait(lambda: (lambda text: text if "done" in text else "")(
            cluster.kubectl("logs", "sc-ids", check=False).stdout), timeout=90)
        seen = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
        assert (seen["uid"], seen["gid"], seen["rootfs"]) == ("1000", "3000", "read-only")
        assert set(seen["groups"].split()) == {"3000", "4000"}, out
        meta = json.loads(cluster.kubectl("get", "pod", "sc-nonroot", "-o", "json").stdout)[
            "metadata"]

        def waiting():
            status = json.loads(cluster.kubectl("get", "pod", "sc-nonroot", "-o", "json")
                                .stdout)["status"]
            return ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get(
                "waiting", {}).get("reason") == "CreateContainerConfigError" and status
        status = wait(waiting, timeout=90)
        assert status["containerStatuses"][0]["state"]["waiting"]["message"] == (
            "container has runAsNonRoot and image will run as root (pod: "
            f'"sc-nonroot_{meta["namespace"]}({meta["uid"]})", container: c)')
        assert status["phase"] == "Pending"
    finally:
        cluster.kubectl("delete", "pod", "sc-ids", "sc-nonroot", "--ignore-not-found",
                        "--timeout=60s")
