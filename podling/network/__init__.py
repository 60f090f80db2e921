"""Pod networking through CNI plugins (issue 4)."""
