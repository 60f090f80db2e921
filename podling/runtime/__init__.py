"""CRI-shaped RuntimeService and its runc + conmon implementation (issue 4)."""
