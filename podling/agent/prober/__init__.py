"""Container probes (kubelet pkg/kubelet/prober): liveness, readiness and startup.

    handlers.py  one run of a probe: exec (runtime exec_sync), httpGet, tcpSocket, grpc
    grpc.py      the grpc handler: a Health/Check client over HTTP/2 (the ``h2`` package)
    worker.py    one asyncio task per probe of a running container: delays, period,
                 thresholds, Unhealthy events
    manager.py   ProbeManager: starts / stops workers from what the runtime reports,
                 keeps results, wakes the pod's worker when one changes; feeds the plan
                 (liveness / startup failures) and the pod status (started, ready)
"""

from podling.agent.prober.manager import ProbeManager

__all__ = ["ProbeManager"]
