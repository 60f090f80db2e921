"""Test support for RuntimeService implementations (no pytest imports)."""
