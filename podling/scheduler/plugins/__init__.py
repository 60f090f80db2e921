"""The default plugins, one module each, and the default profile.

Filter order follows Kubernetes' default profile (NodeUnschedulable, NodeName,
TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit) with podling's NodeReady after
TaintToleration. Score weights follow Kubernetes too: TaintToleration 3, NodeAffinity 2,
NodeResourcesFit (LeastAllocated) 1, BalancedAllocation 1, Spread 2 (as PodTopologySpread).
"""

from __future__ import annotations

from ..framework import Profile
from .node_affinity import NodeAffinity
from .node_name import NodeName
from .node_ports import NodePorts
from .node_ready import NodeReady
from .node_resources import NodeResourcesBalancedAllocation, NodeResourcesFit
from .node_unschedulable import NodeUnschedulable
from .spread import Spread
from .taint_toleration import TaintToleration


def default_profile() -> Profile:
    """A fresh default profile (plugins are stateless; a new one is cheap)."""
    taints, affinity, fit = TaintToleration(), NodeAffinity(), NodeResourcesFit()
    return Profile(
        filters=[NodeUnschedulable(), NodeName(), taints, NodeReady(), affinity, NodePorts(),
                 fit],
        scorers=[(taints, 3), (affinity, 2), (fit, 1), (NodeResourcesBalancedAllocation(), 1),
                 (Spread(), 2)])


__all__ = ["NodeAffinity", "NodeName", "NodePorts", "NodeReady", "NodeResourcesBalancedAllocation",
           "NodeResourcesFit", "NodeUnschedulable", "Spread", "TaintToleration",
           "default_profile"]
