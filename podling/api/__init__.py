"""Wire-level Kubernetes model, no I/O: schema, defaults, validation, errors, selectors, patches, tables."""
