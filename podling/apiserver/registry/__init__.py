"""Per-resource registry strategies and the generic store that runs them."""
