"""Node agent, podling's kubelet.

    agent.py     Agent: wires the parts below for one node (config.py: AgentConfig)
    pod/         pod workers, the pure plan, sync_pod's steps, pod status + its manager
    kuberuntime/ container configs, containers, sandboxes, volumes, pod files, hooks, logs
    node/        Node status + Lease, host facts, admission, node API (logs, exec, stats)
    prober/      liveness / readiness / startup probes (workers, results, handlers)
    pleg.py      runtime exit events → pod syncs
    images.py    imagePullPolicy and ImagePullBackOff; backoff.py the shared back-off
    bootstrap.py joining a cluster; events.py the event recorder
"""
