"""A real in-process API server (memory datastore) and an admin client, per test: the
controllers under test talk to it over HTTPS exactly as in ``podling server``."""

from inprocess import client, server  # noqa: F401 - fixtures
