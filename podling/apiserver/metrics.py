"""metrics.k8s.io/v1beta1 (``kubectl top``), served as metrics-server serves it.

    GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]                       NodeMetrics[List]
    GET /apis/metrics.k8s.io/v1beta1[/namespaces/{ns}]/pods[/{name}]      PodMetrics[List]

Nothing is stored: each request GETs ``/stats/summary`` (podling.agent.node.stats) from every
Ready node it needs, concurrently, with a short timeout; a node that does not answer is
left out, like one metrics-server could not scrape. Lists take label selectors and field
selectors on ``metadata.name`` / ``metadata.namespace``; a pod or node without metrics is
404 with Kubernetes' text (``podmetrics.metrics.k8s.io "x" not found``). A pod is reported
only when every container it runs has a CPU rate. Quantities are metrics-server's: CPU in
nanocores (``"123456n"``), memory (working set) in BinarySI (``"1234Ki"``).

Who may: whoever the caller authorized (admins; a node is denied, see :mod:`.authz`).
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

from ..api import errors, selectors
from ..api.types import Obj
from ..api.quantity import FORMAT_BINARY_SI, format_quantity
from ..api.resources import METRICS_GROUP, Resource
from ..util.timefmt import now_rfc3339
from . import bodies
from .registry.store import RegistryStore
from .streaming.node import NodeDialer
from .requestinfo import RequestInfo

log = logging.getLogger(__name__)

API_VERSION = f"{METRICS_GROUP}/v1beta1"
SUMMARY_TIMEOUT = 5.0  # seconds for one node's answer (its first one takes about 1 s)
#: node → its /stats/summary, or None when it cannot be had
SummaryFetcher = Callable[[Obj], Awaitable[Obj | None]]


def cpu_quantity(nanocores: int) -> str:
    """``"123456n"`` (apimachinery's canonical form of a -9 scaled quantity)."""
    return format_quantity(Decimal(int(nanocores)).scaleb(-9))


def memory_quantity(size: int) -> str:
    """``"1234Ki"`` (BinarySI canonical form, as metrics-server reports bytes)."""
    return format_quantity(int(size), FORMAT_BINARY_SI)


def go_duration(seconds: float) -> str:
    """A window the way Go prints a time.Duration (``"1.002s"``, ``"500ms"``)."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    whole, frac = divmod(ms, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"


def is_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class MetricsApi:
    """The two metrics resources; ``dialer`` reaches the nodes' APIs, ``fetch`` replaces
    the GET of a node's summary (tests)."""

    def __init__(self, pods: RegistryStore, nodes: RegistryStore, dialer: NodeDialer, *,
                 fetch: SummaryFetcher | None = None,
                 timeout: float = SUMMARY_TIMEOUT) -> None:
        self._pods = pods
        self._nodes = nodes
        self._dialer = dialer
        self._fetch = fetch or self._fetch_summary
        self._timeout = timeout

    async def serve(self, request: web.Request, info: RequestInfo) -> web.Response:
        """GET (one) or list, already authorized; 405 for anything else is requestinfo's."""
        if info.resource.name == "nodes":
            if info.name:
                return bodies.respond(await self.node_metrics(info.name))
            return bodies.respond(self._list("NodeMetricsList", await self.list_node_metrics(
                _filter(request, info.resource))))
        if info.name:
            return bodies.respond(await self.pod_metrics(info.namespace or "", info.name))
        return bodies.respond(self._list("PodMetricsList", await self.list_pod_metrics(
            info.namespace, _filter(request, info.resource))))

    @staticmethod
    def _list(kind: str, items: list[Obj]) -> Obj:
        return {"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}

    # -- nodes ---------------------------------------------------------------------------

    async def node_metrics(self, name: str) -> Obj:
        try:
            node = await self._nodes.get(None, name)
        except errors.ApiError as exc:
            raise _not_found("nodemetrics", name) if exc.code == 404 else exc
        found = (await self._summaries([node])).get(name)
        metrics = _node_metrics(node, found) if found else None
        if metrics is None:
            raise _not_found("nodemetrics", name)
        return metrics

    async def list_node_metrics(self, matches: Callable[[Obj], bool]) -> list[Obj]:
        nodes, _ = await self._nodes.list(None)
        nodes = [n for n in nodes if matches(n)]
        summaries = await self._summaries(nodes)
        out = [_node_metrics(n, summaries[n["metadata"]["name"]]) for n in nodes
               if n["metadata"]["name"] in summaries]
        return sorted((m for m in out if m), key=lambda m: m["metadata"]["name"])

    # -- pods ----------------------------------------------------------------------------

    async def pod_metrics(self, namespace: str, name: str) -> Obj:
        try:
            pod = await self._pods.get(namespace, name)
        except errors.ApiError as exc:
            raise _not_found("podmetrics", name) if exc.code == 404 else exc
        found = await self._for_pods([pod])
        if not found:
            raise _not_found("podmetrics", name)
        return found[0]

    async def list_pod_metrics(self, namespace: str | None,
                               matches: Callable[[Obj], bool]) -> list[Obj]:
        pods, _ = await self._pods.list(namespace)
        found = await self._for_pods([p for p in pods if matches(p)])
        return sorted(found, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))

    async def _for_pods(self, pods: list[Obj]) -> list[Obj]:
        node_names = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        nodes = []
        for name in sorted(node_names):
            try:
                nodes.append(await self._nodes.get(None, name))
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        summaries = await self._summaries(nodes)
        by_uid: dict[str, Obj] = {}
        for summary in summaries.values():
            for entry in summary.get("pods") or []:
                by_uid[(entry.get("podRef") or {}).get("uid", "")] = entry
        out = []
        for pod in pods:
            entry = by_uid.get(pod["metadata"].get("uid", ""))
            metrics = _pod_metrics(pod, entry) if entry else None
            if metrics:
                out.append(metrics)
        return out

    # -- reaching the nodes --------------------------------------------------------------

    async def _summaries(self, nodes: list[Obj]) -> dict[str, Obj]:
        """node name → summary, for the Ready nodes that answered."""
        ready = [n for n in nodes if is_ready(n)]
        answers = await asyncio.gather(*(self._fetch(n) for n in ready), return_exceptions=True)
        out = {}
        for node, answer in zip(ready, answers):
            if isinstance(answer, dict):
                out[node["metadata"]["name"]] = answer
            elif isinstance(answer, BaseException):
                log.warning("no stats from node %s: %s", node["metadata"]["name"], answer)
        return out

    async def _fetch_summary(self, node: Obj) -> Obj | None:
        name = node["metadata"]["name"]
        try:
            async with self._dialer.get(node, "/stats/summary",
                                        timeout=self._timeout) as answer:
                if answer.status != 200:
                    log.warning("stats of node %s: HTTP %s", name, answer.status)
                    return None
                body = await answer.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, errors.ApiError) as exc:
            log.warning("stats of node %s unavailable: %s", name, exc or type(exc).__name__)
            return None
        return body if isinstance(body, dict) else None


# -- shapes -------------------------------------------------------------------------------


def _not_found(resource: str, name: str) -> errors.ApiError:
    return errors.not_found(resource, name, METRICS_GROUP)


def _meta(obj: Obj) -> Obj:
    source = obj.get("metadata") or {}
    meta: Obj = {"name": source["name"]}
    if source.get("namespace"):
        meta["namespace"] = source["namespace"]
    meta["creationTimestamp"] = now_rfc3339()
    if source.get("labels"):
        meta["labels"] = dict(source["labels"])
    return meta


def _usage(cpu: Obj, memory: Obj) -> Obj:
    return {"cpu": cpu_quantity(cpu["usageNanoCores"]),
            "memory": memory_quantity(memory.get("workingSetBytes", 0))}


def _window(cpus: list[Obj]) -> str:
    return go_duration(max((c.get("windowSeconds") or 0.0 for c in cpus), default=0.0))


def _node_metrics(node: Obj, summary: Obj) -> Obj | None:
    stats = summary.get("node") or {}
    cpu, memory = stats.get("cpu") or {}, stats.get("memory") or {}
    if "usageNanoCores" not in cpu:
        return None
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": _meta(node),
            "timestamp": cpu.get("time") or now_rfc3339(), "window": _window([cpu]),
            "usage": _usage(cpu, memory)}


def _pod_metrics(pod: Obj, entry: Obj) -> Obj | None:
    containers = entry.get("containers") or []
    cpus = [c.get("cpu") or {} for c in containers]
    if not containers or any("usageNanoCores" not in cpu for cpu in cpus):
        return None
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _meta(pod),
            "timestamp": max(cpu.get("time", "") for cpu in cpus) or now_rfc3339(),
            "window": _window(cpus),
            "containers": [{"name": c["name"], "usage": _usage(c["cpu"], c.get("memory") or {})}
                           for c in containers]}


def _filter(request: web.Request, resource: Resource) -> Callable[[Obj], bool]:
    """Label and field selectors (metadata.name / metadata.namespace) on the pod or node."""
    label_text = request.query.get("labelSelector", "")
    field_text = request.query.get("fieldSelector", "")
    kind = f"{resource.kind.lower()}.{METRICS_GROUP}"  # any name selectors has no table for
    try:
        labels = selectors.parse_label_selector(label_text)
        fields = selectors.check_field_selector(kind, selectors.parse_field_selector(field_text))
    except selectors.SelectorError as exc:
        raise errors.bad_request(str(exc)) from None

    def matches(obj: Obj) -> bool:
        return labels.matches((obj.get("metadata") or {}).get("labels")) and \
            fields.matches(selectors.field_set(kind, obj))
    return matches
