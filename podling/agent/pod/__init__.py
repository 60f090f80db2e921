"""The pod side of the agent: one worker per pod, a pure plan and the ``sync_pod`` executor.

    pod_workers ──▶ sync (sync_pod: numbered steps) ──▶ plan.compute_pod_actions (pure)
                        │                           └─▶ status.pod_status (pure)
                        └─▶ status_manager (the only writer of pods/status)

Nothing here talks to runc or CNI directly: containers, sandboxes and pod files go through
:mod:`podling.agent.kuberuntime`.
"""
