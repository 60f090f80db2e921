"""The kubelet's sysctl admission (kuberuntime/sysctls.py) and its place in admission."""

from __future__ import annotations

import pytest

from podling.agent.kuberuntime.sysctls import dotted, sysctl_problem, unknown_patterns
from podling.agent.node.admission import admit
from podling.api.views import NodeView, PodView


def pod(*sysctls: str, **spec) -> PodView:
    return PodView.from_obj({"metadata": {"name": "p", "uid": "u"}, "spec": {
        "containers": [{"name": "c", "image": "x"}], **spec,
        "securityContext": {"sysctls": [{"name": n, "value": "1"} for n in sysctls]}}})


@pytest.mark.parametrize("sysctls, spec, unsafe, problem", [
    (("kernel.shm_rmid_forced", "net.ipv4.tcp_syncookies"), {}, (), None),
    (("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"), {}, (), None),  # safe since 1.32
    (("net/ipv4/ip_local_port_range",), {}, (), None),  # slashes, read as dots
    (("kernel.msgmax",), {}, (), 'forbidden sysctl: "kernel.msgmax" not allowlisted'),
    (("kernel.msgmax",), {}, ("kernel.msg*",), None),
    (("net.core.somaxconn",), {}, ("net.core.somaxconn",), None),
    (("net.core.somaxconn",), {}, ("net.core.somax",), 'forbidden sysctl: '
     '"net.core.somaxconn" not allowlisted'),
    (("net.ipv4.tcp_syncookies",), {"hostNetwork": True}, (),
     'forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host net enabled'),
    (("kernel.shm_rmid_forced",), {"hostIPC": True}, (),
     'forbidden sysctl: "kernel.shm_rmid_forced" not allowed with host ipc enabled'),
    (("kernel.shm_rmid_forced",), {"hostNetwork": True}, (), None),
])
def test_sysctl_admission(sysctls, spec, unsafe, problem) -> None:
    assert sysctl_problem(pod(*sysctls, **spec), unsafe) == problem


def test_names_and_patterns() -> None:
    assert dotted("net/ipv4/conf/eth0.100/forwarding") == "net.ipv4.conf.eth0/100.forwarding"
    assert dotted("net.ipv4.tcp_syncookies") == "net.ipv4.tcp_syncookies"
    assert unknown_patterns(("kernel.msg*", "net.*", "kernel.sem", "fs.mqueue.*",
                             "vm.swappiness", "kernel.panic")) == ["vm.swappiness",
                                                                   "kernel.panic"]


def test_sysctls_are_judged_first() -> None:
    node = NodeView.from_obj({"metadata": {"name": "n"}, "status": {"allocatable": {
        "pods": "0"}}})  # full: the resources check would refuse it too
    refusal = admit(pod("kernel.msgmax"), node, [])
    assert refusal is not None and refusal.reason == "SysctlForbidden"
    assert refusal.status_message == ('Pod was rejected: forbidden sysctl: "kernel.msgmax" '
                                      "not allowlisted")
