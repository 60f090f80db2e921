"""Test support for network plugins: the NetworkPlugin conformance suite."""
