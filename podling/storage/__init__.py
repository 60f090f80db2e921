"""Storage: the Storage protocol and its backends (memory, SQLite)."""
