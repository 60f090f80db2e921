"""podling: a Kubernetes-compatible pod engine."""

__version__ = "0.1.0"
