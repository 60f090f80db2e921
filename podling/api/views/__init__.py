"""Typed, defaulted views of the Pod and Node fields podling's components read.

Objects travel as JSON dicts (:mod:`podling.api.types`); a component that needs facts out
of one builds a view once, at its boundary (``PodView.from_obj(pod)``), and reads
attributes instead of ``.get("spec") or {}`` chains. Each view lists exactly the fields
podling reads; its docstring states the default of each field, applied when the field is
missing, null or empty — the same values those chains produced.

Why frozen dataclasses and not TypedDicts: a TypedDict only describes the dict, so every
reader would still need the ``.get(...) or default`` chain (a TypedDict cannot default a
missing or null field) and mypy would still accept ``spec["nodeName"]`` on a pod without
one. A frozen dataclass normalises once in ``from_obj``, gives mypy attribute names and
types to check, cannot be changed under a reader's feet, and compares by value (the
scheduler compares two versions of a pod by their views). The cost — building the view —
is paid once per object version.

Views never write: a component that changes an object still builds and sends JSON.
"""

from .container import (ContainerPortView, ContainerView, EnvFromSourceView, EnvVarSourceView,
                        EnvVarView, HandlerView, HTTPGetActionView, KeySelectorView,
                        LifecycleView, ProbeView,
                        ResourceFieldRefView, ResourcesView, SeccompProfileView,
                        SecurityContextView, VolumeMountView)
from .meta import ConditionView, ObjectMetaView, OwnerReferenceView, find_condition
from .node import NodeAddressView, NodeView
from .pod import (DEFAULT_SCHEDULER, TERMINAL_PHASES, DNSConfigView, EmptyDirView,
                  HostAliasView, HostPathView, PodSecurityContextView, PodSpecView,
                  PodStatusView, PodView, VolumeView)
from .scheduling import (NodeAffinityView, NodeSelectorRequirementView, NodeSelectorTermView,
                         PreferredSchedulingTermView, TaintView, TolerationView)

__all__ = [
    "ConditionView", "ContainerPortView", "ContainerView", "DEFAULT_SCHEDULER", "DNSConfigView",
    "EmptyDirView", "EnvFromSourceView", "EnvVarSourceView", "EnvVarView", "HTTPGetActionView", "HandlerView",
    "HostAliasView", "HostPathView", "KeySelectorView", "LifecycleView", "NodeAddressView", "NodeAffinityView",
    "NodeSelectorRequirementView", "NodeSelectorTermView", "NodeView", "ObjectMetaView",
    "OwnerReferenceView", "PodSecurityContextView", "PodSpecView", "PodStatusView", "PodView",
    "PreferredSchedulingTermView", "ProbeView", "ResourceFieldRefView", "ResourcesView",
    "SeccompProfileView", "SecurityContextView", "TERMINAL_PHASES", "TaintView", "TolerationView", "VolumeMountView",
    "VolumeView", "find_condition",
]
