"""Image store: references, registry client, content store, unpacking (issue 3)."""
