"""The agent's side of the container runtime (the kubelet's kuberuntime): how a pod's spec
becomes runtime configs, sandboxes, containers, mounts and files, and how pod identity is
carried in runtime labels so the runtime stays the source of truth.

Modules here use the runtime, images and network only through their interface modules and
know nothing of pod workers, plans or the API server.
"""
