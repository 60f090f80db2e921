"""imagePullPolicy on the node: pull or not, with Kubernetes' events and waiting reasons.

    Never         present → use it;  absent → ErrImageNeverPull
    IfNotPresent  present → "already present on machine";  absent → pull
    Always        pull (the store resolves the tag at the registry, downloads what is missing)
    a failed pull → ErrImagePull, then ImagePullBackOff while the back-off runs

The containers of a pod are checked concurrently; pulls of one image are serialised (the
second finds the image present, as it would have one container after the other).
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from typing import Callable

from podling.agent.backoff import Backoff, go_duration
from podling.agent.held_events import EventSink
from podling.api.views import ContainerView, PodView
from podling.client.events import EventRecorder
from podling.images.interface import Image, ImageError, ImageService, InvalidImageName
from podling.util import timeline


@dataclass
class ImagePullFailure(Exception):
    """The container waits with ``reason`` (ErrImagePull, ImagePullBackOff, …)."""

    reason: str
    message: str

    def __post_init__(self) -> None:
        super().__init__(self.message)


class ImagePuller:
    """Applies a container's imagePullPolicy through the ImageService."""

    def __init__(self, images: ImageService, recorder: EventRecorder, *, backoff: Backoff,
                 clock: Callable[[], float] = time.time) -> None:
        self._images = images
        self._recorder: EventSink = recorder
        self._backoff = backoff
        self._clock = clock
        self._pulling: dict[str, asyncio.Lock] = {}  # image reference → its pull

    def with_recorder(self, recorder: EventSink) -> "ImagePuller":
        """This puller recording its events into ``recorder`` (same back-off, same pulls)."""
        clone = copy.copy(self)
        clone._recorder = recorder
        return clone

    async def ensure(self, pod: PodView, container: ContainerView) -> Image:
        """The image to run ``container`` with; raises ImagePullFailure after a Warning
        ``Failed`` event ``Error: <reason>``, as the kubelet records for every image failure."""
        try:
            image = await self._ensure(pod, container)
        except ImagePullFailure as exc:
            self._event(pod, "Failed", f"Error: {exc.reason}",
                        field_path=pod.spec.field_path(container.name), warning=True)
            raise
        timeline.mark(pod.metadata.uid, f"container.{container.name}.image")
        return image

    async def _ensure(self, pod: PodView, container: ContainerView) -> Image:
        ref, name = container.image, container.name
        policy = container.image_pull_policy
        field_path = pod.spec.field_path(name)
        key = (pod.metadata.uid, "image:" + name)
        try:
            present = await self._images.image_status(ref)
        except InvalidImageName:
            message = (f'Failed to apply default image tag "{ref}": couldn\'t parse image name '
                       f'"{ref}": invalid reference format')
            self._event(pod, "InspectFailed", message, field_path=field_path, warning=True)
            raise ImagePullFailure("InvalidImageName", message) from None
        if present is not None and policy != "Always":
            self._event(pod, "Pulled",
                        f'Container image "{ref}" already present on machine',
                        field_path=field_path)
            return present
        if policy == "Never":
            message = f'Container image "{ref}" is not present with pull policy of Never'
            self._event(pod, "ErrImageNeverPull", message, field_path=field_path, warning=True)
            raise ImagePullFailure("ErrImageNeverPull", message)
        pulling = self._pulling.setdefault(ref, asyncio.Lock())
        waited = pulling.locked()
        async with pulling:
            if waited and policy != "Always" and (present := await self._images.image_status(ref)):
                self._event(pod, "Pulled",  # pulled meanwhile for another container
                            f'Container image "{ref}" already present on machine',
                            field_path=field_path)
                return present
            waiting, _ = self._backoff.in_backoff(key, self._clock())
            if waiting:
                message = f'Back-off pulling image "{ref}"'
                self._event(pod, "BackOff", message, field_path=field_path)
                raise ImagePullFailure("ImagePullBackOff", message)
            return await self._pull(pod, ref, key=key, field_path=field_path)

    async def _pull(self, pod: PodView, ref: str, *, key: tuple[str, str],
                    field_path: str) -> Image:
        self._event(pod, "Pulling", f'Pulling image "{ref}"', field_path=field_path)
        started = self._clock()
        try:
            image = await self._images.pull_image(ref)
        except ImageError as exc:
            self._backoff.record_failure(key, self._clock())
            self._event(pod, "Failed", f'Failed to pull image "{ref}": {exc}',
                        field_path=field_path, warning=True)
            raise ImagePullFailure("ErrImagePull", f'failed to pull image "{ref}": {exc}') \
                from None
        self._backoff.reset(key)
        took = go_duration(self._clock() - started)
        self._event(pod, "Pulled",
                    f'Successfully pulled image "{ref}" in {took} ({took} including waiting). '
                    f'Image size: {image.size} bytes.', field_path=field_path)
        return image

    def _event(self, pod: PodView, reason: str, message: str, *, field_path: str,
               warning: bool = False) -> None:
        """An event about the container at ``field_path`` (Normal unless ``warning``)."""
        self._recorder.event(pod.raw, "Warning" if warning else "Normal", reason, message,
                             field_path=field_path)
