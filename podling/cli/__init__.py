"""Command-line entry points; wiring only."""
