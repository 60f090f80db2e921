"""Test support for image services: the ImageService conformance suite."""
