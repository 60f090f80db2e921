"""Small helpers with no knowledge of Kubernetes: time, files, logging."""
