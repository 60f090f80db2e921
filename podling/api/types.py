"""The one home of the aliases for Kubernetes objects as they travel: JSON dicts.

``Obj`` is a decoded JSON object (a Pod, a Node, a ``spec``, a patch body …) that the code
may read and build; ``ObjMap`` is the read-only form for parameters a function only reads;
``ObjList`` a JSON array of objects. Typed, defaulted views of the fields our components
read live in :mod:`podling.api.views`.
"""

from __future__ import annotations

from typing import Any, Mapping

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]
ObjList = list[Obj]

__all__ = ["Obj", "ObjList", "ObjMap"]
