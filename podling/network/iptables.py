"""Find and remove the iptables rules and chains CNI plugins made for our network.

The bridge plugin (ipMasq) and portmap tag each per-container rule with a comment of the form
``name: "<network>" id: "<container id>"`` (portmap prefixes ``dnat ``) and jump to a
per-container chain (``CNI-<hash>``, ``CNI-DN-<hash>``). The plugins remove them on DEL, except
the bridge plugin when the netns is already gone; this module sweeps such leftovers and
serves ``purge``. Shared top-level chains (``CNI-HOSTPORT-*``) are never removed: other CNI
users (podman) use them too.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from podling.network import procs
from podling.network.interface import NetworkError

_COMMENT = re.compile(r'name: "(?P<net>[^"]*)" id: "(?P<id>[^"]*)"')
_PER_CONTAINER_CHAIN = re.compile(r"^CNI-(?:[A-Z]+-)?[0-9a-f]{16,}$")


@dataclass
class Sweep:
    """What to delete from one table: rules as (chain, rule args), then chains (flush+delete)."""

    rules: list[tuple[str, list[str]]] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rules or self.chains)


def _rule_matches(
    args: list[str], network: str, ids: set[str],
    cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    comment = _option(args, "--comment")
    match = _COMMENT.search(comment or "")
    if not match or match.group("net") != network:
        return False
    if match.group("id") in ids:
        return True
    source = _option(args, "-s")
    if source and cidrs:
        try:
            addr = ipaddress.ip_network(source, strict=False)
        except ValueError:
            return False
        return any(addr.version == c.version and addr.subnet_of(c) for c in cidrs)  # type: ignore[arg-type]
    return False


def _option(args: list[str], name: str) -> str | None:
    for i, token in enumerate(args[:-1]):
        if token == name:
            return args[i + 1]
    return None


def plan_sweep(
    save_output: str, *, network: str, ids: set[str], cidrs: tuple[str, ...] = ()
) -> Sweep:
    """From ``iptables-save -t <table>`` text, pick the rules tagged with ``network`` and one
    of ``ids`` (or, for ``cidrs``, a source address inside them), plus the per-container
    chains they jump to. Pure."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    sweep = Sweep()
    existing: set[str] = set()
    for line in save_output.splitlines():
        if line.startswith(":"):
            existing.add(line[1:].split()[0])
            continue
        if not line.startswith("-A "):
            continue
        tokens = shlex.split(line)
        chain, args = tokens[1], tokens[2:]
        if not _rule_matches(args, network, ids, nets):
            continue
        sweep.rules.append((chain, args))
        target = _option(args, "-j")
        if target and _PER_CONTAINER_CHAIN.match(target) and target not in sweep.chains:
            sweep.chains.append(target)
    sweep.chains = [c for c in sweep.chains if c in existing]
    return sweep


async def sweep_nat(
    *, network: str, ids: set[str], cidrs: tuple[str, ...] = (), ipv6: bool = False,
    timeout: float = 20.0, env: dict[str, str] | None = None,
) -> int:
    """Remove matching nat-table rules and chains; returns how many rules were removed.

    Idempotent; a missing iptables binary means nothing of ours can exist (returns 0).
    """
    binary = "ip6tables" if ipv6 else "iptables"
    try:
        saved = await procs.run([f"{binary}-save", "-t", "nat"], timeout=timeout, env=env)
    except NetworkError:
        return 0
    if saved.returncode != 0:
        return 0
    sweep = plan_sweep(saved.stdout.decode(errors="replace"), network=network, ids=ids,
                       cidrs=cidrs)
    for chain, args in sweep.rules:
        await _iptables(binary, ["-D", chain, *args], timeout, env)
    for chain in sweep.chains:
        await _iptables(binary, ["-F", chain], timeout, env)
        await _iptables(binary, ["-X", chain], timeout, env)
    return len(sweep.rules)


async def run_nat(binary: str, args: list[str], timeout: float,
                  env: dict[str, str] | None) -> procs.ProcResult:
    """Run ``binary -w 5 -t nat ARGS`` (waiting up to 5 s for the xtables lock)."""
    return await procs.run([binary, "-w", "5", "-t", "nat", *args], timeout=timeout, env=env)


def nat_failure(binary: str, args: list[str], res: procs.ProcResult) -> NetworkError:
    """The NetworkError of a failed :func:`run_nat`, naming the command and its stderr."""
    message = res.stderr.decode(errors="replace").strip()
    return NetworkError(f"{binary} {' '.join(args[:2])} failed: {message}")


async def _iptables(
    binary: str, args: list[str], timeout: float, env: dict[str, str] | None
) -> None:
    res = await run_nat(binary, args, timeout, env)
    if res.returncode != 0:
        message = res.stderr.decode(errors="replace")
        if "does not exist" in message or "No chain" in message or "Bad rule" in message:
            return  # already gone: someone else removed it concurrently
        raise nat_failure(binary, args, res)


HOSTPORT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")


def plan_hostport_cleanup(save_output: str) -> Sweep:
    """The portmap plugin's shared skeleton (``CNI-HOSTPORT-*`` chains and the jumps into
    them), but only when no container of anyone's network has a hostPort any more (the DNAT
    chain is empty). portmap re-creates the skeleton on its next ADD. Pure."""
    sweep = Sweep()
    existing: set[str] = set()
    for line in save_output.splitlines():
        if line.startswith(":"):
            existing.add(line[1:].split()[0])
        elif line.startswith("-A "):
            tokens = shlex.split(line)
            if tokens[1] == "CNI-HOSTPORT-DNAT":
                return Sweep()  # some container still maps a port: leave it all
            if tokens[1] not in HOSTPORT_CHAINS and _option(tokens, "-j") in HOSTPORT_CHAINS:
                sweep.rules.append((tokens[1], tokens[2:]))
    sweep.chains = [c for c in HOSTPORT_CHAINS if c in existing]
    return sweep


async def remove_unused_hostport_chains(
    *, ipv6: bool = False, timeout: float = 20.0, env: dict[str, str] | None = None
) -> None:
    """Remove portmap's shared chains when no hostPort of any CNI user is left. Idempotent."""
    binary = "ip6tables" if ipv6 else "iptables"
    try:
        saved = await procs.run([f"{binary}-save", "-t", "nat"], timeout=timeout, env=env)
    except NetworkError:
        return
    if saved.returncode != 0:
        return
    sweep = plan_hostport_cleanup(saved.stdout.decode(errors="replace"))
    for chain, args in sweep.rules:
        await _iptables(binary, ["-D", chain, *args], timeout, env)
    for chain in sweep.chains:
        await _iptables(binary, ["-F", chain], timeout, env)
    for chain in sweep.chains:
        await _iptables(binary, ["-X", chain], timeout, env)
