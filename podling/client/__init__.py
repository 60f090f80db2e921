"""Async REST client for the podling API (informers arrive with the agent and scheduler)."""
