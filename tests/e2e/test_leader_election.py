"""The server's controllers run only while it holds the Lease
``kube-system/podling-controller-manager`` (the scheduler likewise, ``podling-scheduler``):
seen through the real kubectl: taken at start, given up at a clean stop, and taken back at
once by the same server after a restart, even after a kill -9."""

from __future__ import annotations

import json
import signal

from podling_e2e import start_server


def lease(server, name: str, holder: str = "") -> dict:
    """The Lease's spec, once it exists (and, given ``holder``, once that one holds it)."""
    condition = f"--for=jsonpath={{.spec.holderIdentity}}={holder}" if holder else "--for=create"
    server.kubectl("wait", condition, f"lease/{name}", "-n", "kube-system", "--timeout=30s")
    return json.loads(server.kubectl("get", "lease", name, "-n", "kube-system",
                                     "-o", "json").stdout)["spec"]


def test_the_controllers_lease_is_held_released_at_stop_and_taken_back(tmp_path):
    data, home = str(tmp_path / "data"), str(tmp_path / "home")
    server = start_server(data, home)
    try:
        held = lease(server, "podling-controller-manager")
        assert held["holderIdentity"] and held["leaseDurationSeconds"] == 15
        assert held["leaseTransitions"] == 0
        server.kubectl("create", "namespace", "elected")  # the controllers act: its SA
        server.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "elected",
                       "--timeout=30s")
    finally:
        assert server.kill() == 0
    server = start_server(data, home)
    try:
        again = lease(server, "podling-controller-manager", held["holderIdentity"])
        assert again["leaseTransitions"] == 1  # released at the stop, then taken again
        assert again["renewTime"] != held["renewTime"]
    finally:
        server.kill(signal.SIGKILL)  # no release this time
    server = start_server(data, home)
    try:  # its own unexpired lease: the same identity renews it (another would wait it out)
        after_kill = lease(server, "podling-controller-manager", held["holderIdentity"])
        assert after_kill["leaseTransitions"] == 1  # the same holder: no transition
    finally:
        server.kill()
