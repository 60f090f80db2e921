"""build_container_config: Kubernetes' command/env/user/resources/security translation."""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any

import pytest

from podling.agent.kuberuntime import labels as L
from podling.agent.kuberuntime.container_config import (build_container_config, milli_cpu_to_quota,
                                                        milli_cpu_to_shares, normalize_signal)
from podling.agent.kuberuntime.env import PodContext, container_env, expand, mapping_for
from podling.agent.kuberuntime.errors import ContainerConfigError
from podling.agent.kuberuntime.resource_fields import NodeAllocatable
from podling.api.views import ContainerView, PodView
from podling.images.interface import ImageConfig
from podling.runtime.interface import Mount, Resources

NODE_CPU = 4000
NODE_MEM = 8 * 1024 ** 3


def make_pod(**spec: Any) -> dict[str, Any]:
    pod = {"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                        "labels": {"app": "web", "tier": "fe"},
                        "annotations": {"a/b": "x"}},
           "spec": {"nodeName": "n1", "serviceAccountName": "sa",
                    "containers": [{"name": "c", "image": "busybox"}]}}
    pod["spec"].update(spec)
    return pod


def build(pod: dict[str, Any] | None = None, container: dict[str, Any] | None = None,
          image: ImageConfig | None = None, rootfs: str = "/nonexistent", *,
          pod_ips: tuple[str, ...] = ("10.0.0.5",), host_ips: tuple[str, ...] = ("192.168.1.2",),
          **kw: Any):
    """The env as the agent computes it (once, from the pod context), then the config."""
    pod_view = PodView.from_obj(pod or make_pod())
    view = (ContainerView.from_obj(container) if container is not None
            else pod_view.spec.containers[0])
    env = asyncio.run(container_env(pod_view, view, PodContext(
        tuple(pod_ips), tuple(host_ips), NodeAllocatable(NODE_CPU, NODE_MEM)), NoObjects()))
    args = dict(image=image or ImageConfig(cmd=["sh"]), rootfs=rootfs, env=env,
                node_name="n1", restart_count=0, log_path="/logs/c/0.log", mounts=[],
                container_type="app")
    args.update(kw)
    return build_container_config(pod_view, view, **args)


class NoObjects:
    """An ObjectSource without any ConfigMap or Secret."""

    async def get(self, resource: Any, namespace: str, name: str) -> None:
        return None


# -- expansion ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$(A", "$(A"),
    ("$A", "$A"),
    ("trailing$", "trailing$"),
    ("$$$(A)", "$1"),
    ("a$(A)$(A)", "a11"),
    ("$()", "$()"),
    ("", ""),
])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, mapping_for({"A": "1", "B": "2"})) == expected


# -- command matrix -------------------------------------------------------------------------

@pytest.mark.parametrize("entrypoint,cmd,command,args,expected", [
    (["/ep"], ["c1"], None, None, ["/ep", "c1"]),
    (["/ep"], ["c1"], ["/x"], None, ["/x"]),
    (["/ep"], ["c1"], None, ["a1"], ["/ep", "a1"]),
    (["/ep"], ["c1"], ["/x"], ["a1"], ["/x", "a1"]),
    ([], ["/c1", "z"], None, None, ["/c1", "z"]),
    ([], ["/c1"], None, ["a1"], ["a1"]),
    (["/ep"], [], None, None, ["/ep"]),
])
def test_command_rules(entrypoint, cmd, command, args, expected) -> None:
    container: dict[str, Any] = {"name": "c"}
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    cfg = build(container=container, image=ImageConfig(entrypoint=entrypoint, cmd=cmd))
    assert cfg.command == expected


def test_no_command_is_an_error() -> None:
    with pytest.raises(ContainerConfigError) as e:
        build(container={"name": "c"}, image=ImageConfig())
    assert "no command specified" in e.value.message


def test_command_and_args_expand_from_container_env() -> None:
    container = {"name": "c", "command": ["echo", "$(GREETING)"],
                 "args": ["$(NAME)", "$$(NAME)", "$(NOPE)"],
                 "env": [{"name": "GREETING", "value": "hi"},
                         {"name": "NAME", "valueFrom": {"fieldRef":
                                                         {"fieldPath": "metadata.name"}}}]}
    cfg = build(container=container, image=ImageConfig(env=["IMG=1"]))
    assert cfg.command == ["echo", "hi", "web", "$(NAME)", "$(NOPE)"]


# -- env ------------------------------------------------------------------------------------

def test_env_order_and_expansion() -> None:
    container = {"name": "c", "env": [
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-b"},
        {"name": "C", "value": "$(D)"},          # D is later: stays literal
        {"name": "D", "value": "d"},
        {"name": "IMG", "value": "$(IMG)x"},     # image env is not visible to expansion
        {"name": "PATH", "value": "/bin"},
        {"name": "E", "value": "$$(A)"},
        {"name": "EMPTY"},
    ]}
    cfg = build(container=container, image=ImageConfig(env=["PATH=/usr/bin", "IMG=i"], cmd=["x"]),
                hostname="web")
    assert cfg.env == ["PATH=/bin", "HOSTNAME=web", "IMG=$(IMG)x", "A=a", "B=a-b", "C=$(D)",
                       "D=d", "E=$(A)", "EMPTY="]


def test_default_path_when_image_has_none() -> None:
    cfg = build(image=ImageConfig(cmd=["x"], env=["X=1"]))
    assert cfg.env[0].startswith("PATH=/usr/local/sbin") and cfg.env[1] == "X=1"


# -- users and groups -----------------------------------------------------------------------

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "# comment\n"
          "daemon:x:1:1::/:/bin/false\n"
          "app:x:1000:1001::/home/app:/bin/sh\n")
GROUP = ("root:x:0:\n"
         "wheel:x:10:root,app\n"
         "appgrp:x:1001:\n"
         "audio:x:29:app\n"
         "staff:x:50:daemon\n")


@pytest.fixture
def rootfs(tmp_path) -> str:
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    return str(tmp_path / "rootfs")


@pytest.mark.parametrize("image_user,pod_sc,c_sc,uid,gid,gids", [
    ("", {}, {}, 0, 0, [0, 10]),
    ("app", {}, {}, 1000, 1001, [1001, 10, 29]),
    ("1000", {}, {}, 1000, 1001, [1001, 10, 29]),
    ("app:audio", {}, {}, 1000, 29, [29, 10]),
    ("1000:50", {}, {}, 1000, 50, [50, 10, 29]),
    ("4242", {}, {}, 4242, 0, [0]),
    ("4242:4343", {}, {}, 4242, 4343, [4343]),
    ("app", {"runAsUser": 1}, {}, 1, 1, [1, 50]),
    ("app", {"runAsUser": 1}, {"runAsUser": 7}, 7, 0, [0]),
    ("app", {"runAsUser": 1, "runAsGroup": 5}, {}, 1, 5, [5, 50]),
    ("app", {}, {"runAsGroup": 5}, 1000, 5, [5, 10, 29]),
    ("app", {"fsGroup": 2000, "supplementalGroups": [3000, 10]}, {}, 1000, 1001,
     [1001, 10, 29, 2000, 3000]),
])
def test_user_resolution(rootfs, image_user, pod_sc, c_sc, uid, gid, gids) -> None:
    pod = make_pod(securityContext=pod_sc)
    container = {"name": "c", "securityContext": c_sc}
    cfg = build(pod=pod, container=container, rootfs=rootfs,
                image=ImageConfig(cmd=["x"], user=image_user))
    assert (cfg.uid, cfg.gid, cfg.additional_gids) == (uid, gid, gids)


@pytest.mark.parametrize("image_user,word", [
    ("nobody", "unable to find user nobody"),
    ("app:nogroup", "unable to find group nogroup"),
])
def test_unknown_user_or_group(rootfs, image_user, word) -> None:
    with pytest.raises(ContainerConfigError, match=word) as e:
        build(rootfs=rootfs, image=ImageConfig(cmd=["x"], user=image_user))
    assert e.value.reason == "CreateContainerConfigError"


def test_passwd_symlink_out_of_rootfs_is_not_followed(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4444:4444::/:/bin/sh\n")
    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(outside / "passwd"), root / "etc" / "passwd")
    with pytest.raises(ContainerConfigError, match="unable to find user evil"):
        build(rootfs=str(root), image=ImageConfig(cmd=["x"], user="evil"))
    root2 = tmp_path / "r2"
    root2.mkdir()
    os.symlink(str(outside), root2 / "etc")
    with pytest.raises(ContainerConfigError, match="unable to find user evil"):
        build(rootfs=str(root2), image=ImageConfig(cmd=["x"], user="evil"))


POD_REF = '(pod: "web_ns1(u-1)", container: c)'


@pytest.mark.parametrize("image_user,pod_sc,c_sc,message", [
    ("", {"runAsNonRoot": True}, {},
     f"container has runAsNonRoot and image will run as root {POD_REF}"),
    ("0", {}, {"runAsNonRoot": True},
     f"container has runAsNonRoot and image will run as root {POD_REF}"),
    ("0:5", {"runAsNonRoot": True}, {},
     f"container has runAsNonRoot and image will run as root {POD_REF}"),
    ("app", {"runAsNonRoot": True}, {},
     "container has runAsNonRoot and image has non-numeric user (app), cannot verify user "
     f"is non-root {POD_REF}"),
    ("1000", {"runAsNonRoot": True, "runAsUser": 0}, {},
     f"container's runAsUser breaks non-root policy {POD_REF}"),
])
def test_run_as_non_root_errors(rootfs, image_user, pod_sc, c_sc, message) -> None:
    pod = make_pod(securityContext=pod_sc)
    with pytest.raises(ContainerConfigError) as e:
        build(pod=pod, container={"name": "c", "securityContext": c_sc}, rootfs=rootfs,
              image=ImageConfig(cmd=["x"], user=image_user))
    assert e.value.message == message
    assert e.value.reason == "CreateContainerConfigError"


@pytest.mark.parametrize("image_user,pod_sc,c_sc", [
    ("1000", {"runAsNonRoot": True}, {}),
    ("", {"runAsNonRoot": True, "runAsUser": 1000}, {}),
    ("", {"runAsNonRoot": True}, {"runAsNonRoot": False}),
    ("app", {"runAsNonRoot": True}, {"runAsUser": 5}),
])
def test_run_as_non_root_ok(rootfs, image_user, pod_sc, c_sc) -> None:
    build(pod=make_pod(securityContext=pod_sc), container={"name": "c", "securityContext": c_sc},
          rootfs=rootfs, image=ImageConfig(cmd=["x"], user=image_user))


# -- resources ------------------------------------------------------------------------------

@pytest.mark.parametrize("resources,expected", [
    ({}, Resources(2, 0, 100000, 0)),
    ({"requests": {"cpu": "100m"}}, Resources(102, 0, 100000, 0)),
    ({"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}, Resources(1024, 200000, 100000, 0)),
    ({"limits": {"cpu": "500m"}}, Resources(512, 50000, 100000, 0)),
    ({"limits": {"cpu": "1m"}}, Resources(2, 1000, 100000, 0)),
    ({"requests": {"cpu": "1m"}}, Resources(2, 0, 100000, 0)),
    ({"limits": {"memory": "128Mi"}}, Resources(2, 0, 100000, 128 * 1024 ** 2)),
    ({"limits": {"memory": "1G"}, "requests": {"memory": "1M"}},
     Resources(2, 0, 100000, 10 ** 9)),
])
def test_resources(resources, expected) -> None:
    assert build(container={"name": "c", "resources": resources}).resources == expected


def test_shares_and_quota_helpers() -> None:
    assert milli_cpu_to_shares(0) == 2
    assert milli_cpu_to_shares(10 ** 9) == 262144
    assert milli_cpu_to_quota(0) == 0
    assert milli_cpu_to_quota(250) == 25000


# -- security -------------------------------------------------------------------------------

def test_security_options() -> None:
    container = {"name": "c", "securityContext": {
        "privileged": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN", "cap_sys_time"], "drop": ["ALL", "CAP_CHOWN"]}}}
    sec = build(container=container).security
    assert sec.privileged and sec.readonly_rootfs and sec.no_new_privs
    assert sec.capabilities_add == ("CAP_NET_ADMIN", "CAP_SYS_TIME")
    assert sec.capabilities_drop == ("ALL", "CAP_CHOWN")
    assert sec.masked_paths is None


@pytest.mark.parametrize("sc,nnp", [({}, False), ({"allowPrivilegeEscalation": True}, False),
                                     ({"allowPrivilegeEscalation": False}, True)])
def test_no_new_privs_default(sc, nnp) -> None:
    assert build(container={"name": "c", "securityContext": sc}).security.no_new_privs is nnp


def test_unmasked_proc_mount() -> None:
    sec = build(container={"name": "c", "securityContext": {"procMount": "Unmasked"}}).security
    assert sec.masked_paths == () and sec.readonly_paths == ()


@pytest.mark.parametrize("image_sig,lifecycle,expected", [
    ("", None, "SIGTERM"), ("SIGQUIT", None, "SIGQUIT"), ("9", None, "SIGKILL"),
    ("int", None, "SIGINT"), ("SIGQUIT", "SIGUSR1", "SIGUSR1")])
def test_stop_signal(image_sig, lifecycle, expected) -> None:
    container: dict[str, Any] = {"name": "c"}
    if lifecycle:
        container["lifecycle"] = {"stopSignal": lifecycle}
    assert build(container=container,
                 image=ImageConfig(cmd=["x"], stop_signal=image_sig)).stop_signal == expected
    assert normalize_signal("") == "SIGTERM"


# -- the rest -------------------------------------------------------------------------------

def test_plain_fields_labels_and_annotations() -> None:
    pod = make_pod(terminationGracePeriodSeconds=5)
    container = {"name": "c", "tty": True, "stdin": True, "stdinOnce": True,
                 "workingDir": "/work", "terminationMessagePolicy": "FallbackToLogsOnError"}
    mounts = [Mount("/h", "/c")]
    before = copy.deepcopy(container)
    cfg = build(pod=pod, container=container, restart_count=3, mounts=mounts,
                container_type="init", image=ImageConfig(cmd=["x"], working_dir="/img"))
    assert container == before
    assert (cfg.name, cfg.attempt, cfg.working_dir, cfg.tty, cfg.stdin, cfg.stdin_once) == \
        ("c", 3, "/work", True, True, True)
    assert cfg.rootfs == "/nonexistent" and cfg.log_path == "/logs/c/0.log"
    assert cfg.mounts == mounts
    assert cfg.labels == {L.POD_NAME: "web", L.POD_NAMESPACE: "ns1", L.POD_UID: "u-1",
                          L.MANAGED_BY: "n1", L.CONTAINER_NAME: "c", L.CONTAINER_TYPE: "init"}
    assert cfg.annotations == {
        L.CONTAINER_HASH: L.container_hash(container), L.RESTART_COUNT: "3",
        L.TERMINATION_MESSAGE_PATH: "/dev/termination-log",
        L.TERMINATION_MESSAGE_POLICY: "FallbackToLogsOnError", L.GRACE_PERIOD: "5"}


def test_working_dir_defaults() -> None:
    assert build(image=ImageConfig(cmd=["x"], working_dir="/img")).working_dir == "/img"
    assert build(image=ImageConfig(cmd=["x"])).working_dir == "/"
    cfg = build()
    assert cfg.annotations[L.GRACE_PERIOD] == "30"
    assert cfg.annotations[L.TERMINATION_MESSAGE_POLICY] == "File"
    assert cfg.labels[L.CONTAINER_TYPE] == "app"


def test_spec_hash_is_of_the_container_as_received() -> None:
    """The hash recorded on a container is of its JSON as received (ContainerView.raw),
    pinned: a change would restart every adopted container of a running node."""
    raw = {"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
           "env": [{"name": "A", "value": "1"}]}
    cfg = build(container=raw, image=ImageConfig(cmd=["x"]))
    assert cfg.annotations[L.CONTAINER_HASH] == L.container_hash(raw) == "c1d36427b714ee76"
    # the defaults the view fills in (imagePullPolicy, terminationMessagePath …) are not
    assert build(container={"name": "c"}, image=ImageConfig(cmd=["x"])).annotations[
        L.CONTAINER_HASH] == L.container_hash({"name": "c"})


@pytest.mark.parametrize("pod_profile, container_profile, expected", [
    (None, None, ""),  # neither names one: Unconfined, as a kubelet without --seccomp-default
    ({"type": "RuntimeDefault"}, None, "runtime/default"),
    ({"type": "RuntimeDefault"}, {"type": "Unconfined"}, ""),  # the container's wins
    (None, {"type": "RuntimeDefault"}, "runtime/default"),
    ({"type": "Localhost", "localhostProfile": "profiles/a.json"}, None,
     "localhost//seccomp-root/profiles/a.json"),
])
def test_the_seccomp_profile_is_the_containers_else_the_pods(pod_profile, container_profile,
                                                             expected) -> None:
    pod_sc = {"seccompProfile": pod_profile} if pod_profile else {}
    c_sc = {"seccompProfile": container_profile} if container_profile else {}
    config = build(pod=make_pod(securityContext=pod_sc),
                   container={"name": "c", "securityContext": c_sc},
                   seccomp_root="/seccomp-root")
    assert config.security.seccomp == expected
