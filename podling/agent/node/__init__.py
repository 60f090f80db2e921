"""The node side of the agent: the Node object and its Lease, host facts, pod admission
against the node, and the node API (logs, exec / attach / port-forward, stats) that the API
server reaches for ``kubectl logs``, ``exec`` and ``top``."""
