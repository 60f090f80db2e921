"""Shared test suites for Storage implementations."""
