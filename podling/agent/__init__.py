"""Node agent, podling's kubelet: pod workers, PLEG, status manager (issue 4)."""
