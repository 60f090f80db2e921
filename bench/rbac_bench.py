#!/usr/bin/env python3
"""Benchmark RBAC decisions: microseconds per decision as bindings grow.

In-process (no server): the default policy with admin / edit / view aggregated, then N
RoleBindings of ``view`` to N users in N namespaces; a decision that is allowed (``list
pods`` in the user's namespace) and one that is refused (``delete pods``), each timed over
2,000 calls. The API server makes one such decision per request of a user who is neither in
system:masters nor a node.

    .venv/bin/python bench/rbac_bench.py [--bindings 10,1000,10000]

A measurement, not a test: nothing asserts on timings. Kubernetes has no peer for this that
runs on this machine, so there is no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from podling.apiserver import authz
from podling.apiserver.auth import User
from podling.apiserver.rbac import RbacAuthorizer
from podling.apiserver.rbacdefaults import ensure_default_policy
from podling.apiserver.registry.strategies import registry_stores
from podling.controllers.clusterroleaggregation import aggregated_rules
from podling.storage.memory import MemoryStore

GROUP = "rbac.authorization.k8s.io"
CALLS = 2000


async def measure(bindings: int) -> dict[str, float]:
    storage = MemoryStore()
    rbac = RbacAuthorizer(storage)
    stores = registry_stores(storage, rbac=rbac)
    await ensure_default_policy(stores)
    for name in ("view", "edit", "admin"):  # what the aggregation controller does
        roles, _ = await stores["clusterroles"].list(None)
        await stores["clusterroles"].update(None, name, lambda o: {
            **o, "rules": aggregated_rules(o, roles)})
    for n in range(bindings):
        await stores["rolebindings"].create(f"ns{n}", {
            "apiVersion": f"{GROUP}/v1", "kind": "RoleBinding",
            "metadata": {"name": "view", "namespace": f"ns{n}"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": GROUP, "kind": "User", "name": f"u{n}"}]})
    await rbac.start()
    user = User(f"u{bindings // 2}", ("system:authenticated",))
    out = {}
    for label, verb in (("allowed", "list"), ("refused", "delete")):
        attrs = authz.Attributes(verb, "pods", namespace=f"ns{bindings // 2}")
        started = time.perf_counter()
        for _ in range(CALLS):
            rbac.decide(user, attrs)
        out[label] = (time.perf_counter() - started) / CALLS * 1e6
    await rbac.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bindings", default="10,1000,10000")
    args = parser.parse_args()
    print(f"{'RoleBindings':>12}  {'allowed µs':>10}  {'refused µs':>10}")
    for count in (int(n) for n in args.bindings.split(",")):
        found = asyncio.run(measure(count))
        print(f"{count:>12}  {found['allowed']:>10.1f}  {found['refused']:>10.1f}")


if __name__ == "__main__":
    main()
