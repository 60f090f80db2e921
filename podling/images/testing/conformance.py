"""The ImageService conformance suite (docs/architecture.md §3): every implementation passes it.

A check is ``async def check_x(h: ImageHarness)``. The harness supplies a fresh, empty
service whose registry serves two references (``present``, ``other``) and lacks a third
(``missing``, in the same registry), and counts how often the registry was asked to resolve
a reference (``resolves()``, monotonic), which is how de-duplication is seen. The runner
creates one harness per check and closes it afterwards. Nothing here imports pytest.

The contract checked::

    image_status(absent) is None; list_images() of a new store is empty
    pull_image(ref) → Image; then image_status(ref / its ID) is that image, list_images has it
    remove_image(tag) → image_status None; removing again (or an unknown ref) is fine
    N concurrent pull_image(ref) → one resolve at the registry, the same Image for everyone;
        a caller cancelled meanwhile does not cancel the others' pull
    pull_image(missing) → ManifestNotFound (a RegistryError); unparsable → InvalidImageName;
        a failed pull leaves no image behind
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Protocol

from ..errors import ImageError, InvalidImageName, ManifestNotFound, RegistryError
from ..interface import ImageService
from ..refs import parse_reference

TIMEOUT = 30.0


class ImageHarness(Protocol):
    service: ImageService
    present: str  # pullable
    other: str  # pullable, a different repository
    missing: str  # same registry, not there

    async def resolves(self) -> int:
        """How many times the registry was asked for a manifest so far."""
        ...


Check = Callable[[ImageHarness], Awaitable[None]]


async def _expect(exc: type[BaseException], call: Awaitable[object]) -> BaseException:
    try:
        await asyncio.wait_for(call, TIMEOUT)
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


def _name(ref: str) -> str:
    return str(parse_reference(ref))


async def check_absent_image_status_is_none(h: ImageHarness) -> None:
    assert await h.service.image_status(h.present) is None
    assert await h.service.image_status(h.missing) is None
    assert await h.service.list_images() == []


async def check_pull_then_status(h: ImageHarness) -> None:
    image = await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)
    assert _name(h.present) in image.names, image.names
    assert image.id.startswith("sha256:") and image.layers and image.size > 0
    assert any(d.startswith(parse_reference(h.present).name + "@sha256:")
               for d in image.repo_digests), image.repo_digests
    for ref in (h.present, _name(h.present), image.id, image.repo_digests[0]):
        found = await h.service.image_status(ref)
        assert found is not None and found.id == image.id, ref
    assert await h.service.image_status(h.other) is None


async def check_list_images(h: ImageHarness) -> None:
    first = await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)
    second = await asyncio.wait_for(h.service.pull_image(h.other), TIMEOUT)
    images = await h.service.list_images()
    names = {n for i in images for n in i.names}
    assert {_name(h.present), _name(h.other)} <= names, names
    assert {i.id for i in images} == {first.id, second.id}


async def check_remove_image(h: ImageHarness) -> None:
    await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)
    await h.service.remove_image(h.present)
    assert await h.service.image_status(h.present) is None
    assert await h.service.list_images() == []
    await h.service.remove_image(h.present)  # idempotent
    await h.service.remove_image(h.missing)


async def check_remove_image_by_id(h: ImageHarness) -> None:
    image = await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)
    await h.service.remove_image(image.id)
    assert await h.service.image_status(h.present) is None
    assert await h.service.image_status(image.id) is None


async def check_pull_again_after_remove(h: ImageHarness) -> None:
    image = await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)
    await h.service.remove_image(h.present)
    again = await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)
    assert again.id == image.id
    assert (await h.service.image_status(h.present)) is not None


async def check_concurrent_pulls_are_deduplicated(h: ImageHarness) -> None:
    before = await h.resolves()
    images = await asyncio.wait_for(asyncio.gather(
        *(h.service.pull_image(h.present) for _ in range(4))), TIMEOUT)
    shared = await h.resolves() - before
    assert len({i.id for i in images}) == 1
    before = await h.resolves()
    await asyncio.wait_for(h.service.pull_image(h.present), TIMEOUT)  # Always: asks again
    single = await h.resolves() - before
    assert shared == single >= 1, (shared, single)


async def check_concurrent_pulls_of_different_refs(h: ImageHarness) -> None:
    a, b = await asyncio.wait_for(asyncio.gather(
        h.service.pull_image(h.present), h.service.pull_image(h.other)), TIMEOUT)
    assert _name(h.present) in a.names and _name(h.other) in b.names


async def check_cancelled_caller_does_not_cancel_shared_pull(h: ImageHarness) -> None:
    quitter = asyncio.ensure_future(h.service.pull_image(h.present))
    stayer = asyncio.ensure_future(h.service.pull_image(h.present))
    await asyncio.sleep(0)  # both have joined the pull
    quitter.cancel()
    image = await asyncio.wait_for(stayer, TIMEOUT)
    assert quitter.cancelled()
    assert (await h.service.image_status(h.present)).id == image.id  # type: ignore[union-attr]


async def check_pull_errors_are_typed(h: ImageHarness) -> None:
    error = await _expect(RegistryError, h.service.pull_image(h.missing))
    assert isinstance(error, ManifestNotFound), type(error)
    assert str(error), "the message is what the user sees"
    await _expect(InvalidImageName, h.service.pull_image("Not A/Valid::Ref"))
    assert await h.service.image_status(h.missing) is None
    assert await h.service.list_images() == []


async def check_concurrent_failing_pulls_all_fail(h: ImageHarness) -> None:
    results = await asyncio.wait_for(asyncio.gather(
        *(h.service.pull_image(h.missing) for _ in range(3)), return_exceptions=True),
        TIMEOUT)
    assert all(isinstance(r, ManifestNotFound) for r in results), results
    error = await _expect(ImageError, h.service.pull_image(h.missing))  # not cached
    assert isinstance(error, ManifestNotFound)


CHECKS: list[Check] = [
    check_absent_image_status_is_none, check_pull_then_status, check_list_images,
    check_remove_image, check_remove_image_by_id, check_pull_again_after_remove,
    check_concurrent_pulls_are_deduplicated, check_concurrent_pulls_of_different_refs,
    check_cancelled_caller_does_not_cancel_shared_pull, check_pull_errors_are_typed,
    check_concurrent_failing_pulls_all_fail,
]
