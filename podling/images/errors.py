"""Image errors, named after the reasons the agent reports (InvalidImageName, ErrImagePull…)."""

from __future__ import annotations


class ImageError(Exception):
    """Base of every image-store failure; ``str()`` is a user-facing message."""


class InvalidImageName(ImageError):
    """The reference does not parse (the agent reports InvalidImageName)."""


class ImageNotPresent(ImageError):
    """The image is not in the local store (ErrImageNeverPull under pull policy Never)."""


class RegistryError(ImageError):
    """A registry could not serve what was asked (the agent reports ErrImagePull)."""


class RegistryUnauthorized(RegistryError):
    """The registry refused the credentials (or asked for some)."""


class ManifestNotFound(RegistryError):
    """No such repository, tag or digest."""


class NoMatchingPlatform(RegistryError):
    """An index with no manifest for this node's os/arch/variant."""


class DigestMismatch(ImageError):
    """Downloaded or imported content does not hash to the digest it was named by."""


class UnsafeLayer(ImageError):
    """A layer tries to write outside its directory, or is otherwise refused."""


class LayerTooLarge(UnsafeLayer):
    """A layer decompresses to more than the configured cap (decompression bomb)."""


class InvalidArchive(ImageError):
    """An image archive or OCI layout that cannot be imported."""
