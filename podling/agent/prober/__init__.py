"""Container probes (liveness, readiness, startup) will live here: a worker per probe that
runs it on its period and publishes the results the pod status reads. Nothing is implemented
yet: nothing passes readiness results to ``pod.status.pod_status``, so a running container
without a ``readinessProbe`` is ready and one with a ``readinessProbe`` never is."""
