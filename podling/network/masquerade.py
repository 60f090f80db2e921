"""The node's masquerade rule for traffic leaving the pod network, set up once per node.

The bridge plugin's ``ipMasq`` installs the same rules per pod (a POSTROUTING jump for the
pod's address and a chain of its own), which costs 15 ``iptables`` runs per pod, each
holding the xtables lock that every other pod's setup waits for. Like flannel in k3s, podling
installs them once for the whole pod CIDR instead::

    -A POSTROUTING -s <pod CIDR> -m comment --comment 'name: "<net>" id: "node"' -j CNI-<hash>
    -A CNI-<hash> -d <pod CIDR> -j ACCEPT            (pod to pod: not rewritten)
    -A CNI-<hash> ! -d 224.0.0.0/4 -j MASQUERADE     (ff00::/8 for IPv6)

The comment and the chain name have the shape of the plugins' own, so
``iptables.sweep_nat`` (``purge``) removes them with the rest of the network's rules.
"""

from __future__ import annotations

import hashlib

from podling.network import iptables

NODE_ID = "node"
"""The ``id`` in the comment of the node's jump rule: ``purge`` sweeps it by this id, since
it may not know the pod CIDR the API server assigned."""


def chain_name(network: str, cidr: str) -> str:
    """The node chain of ``network`` for ``cidr``: ``CNI-`` and 24 hex digits."""
    return "CNI-" + hashlib.sha256(f"{network} {cidr} masquerade".encode()).hexdigest()[:24]


def rules(network: str, cidr: str) -> list[list[str]]:
    """The ``-A`` arguments, the chain's own rules first and the jump into it last. Pure."""
    chain = chain_name(network, cidr)
    multicast = "ff00::/8" if ":" in cidr else "224.0.0.0/4"
    comment = f'name: "{network}" id: "{NODE_ID}"'
    return [["-A", chain, "-d", cidr, "-j", "ACCEPT"],
            ["-A", chain, "!", "-d", multicast, "-j", "MASQUERADE"],
            ["-A", "POSTROUTING", "-s", cidr, "-m", "comment", "--comment", comment,
             "-j", chain]]


async def ensure(network: str, cidr: str, *, timeout: float,
                 env: dict[str, str] | None = None) -> None:
    """Install the rules of ``cidr`` unless the jump into them is there already (one
    ``iptables -C`` when they are). NetworkError when iptables refuses."""
    binary = "ip6tables" if ":" in cidr else "iptables"
    *own, jump = rules(network, cidr)
    if await _run(binary, ["-C", *jump[1:]], timeout, env, check=False):
        return
    chain = chain_name(network, cidr)
    await _run(binary, ["-N", chain], timeout, env, check=False)  # may exist, half made
    await _run(binary, ["-F", chain], timeout, env)
    for args in [*own, jump]:
        await _run(binary, args, timeout, env)


async def _run(binary: str, args: list[str], timeout: float, env: dict[str, str] | None, *,
               check: bool = True) -> bool:
    """Run ``binary -w 5 -t nat ARGS``; True when it succeeded. With ``check``, a failure
    is a NetworkError naming the command."""
    res = await iptables.run_nat(binary, args, timeout, env)
    if res.returncode != 0 and check:
        raise iptables.nat_failure(binary, args, res)
    return res.returncode == 0
