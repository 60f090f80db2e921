"""ListOptions checks shared by list and watch (apimachinery ValidateListOptions).

podling serves every list from its cache at the latest revision, so ``limit`` never
truncates and ``resourceVersion`` / ``resourceVersionMatch`` only need to be well formed.
"""

from __future__ import annotations

from aiohttp import web

from ..api import errors

_MATCHES = ("Exact", "NotOlderThan", "")


def check_list_options(request: web.Request) -> None:
    """400 for parameters that do not parse; 422 (kind ListOptions) for invalid combinations."""
    for name in ("limit", "timeoutSeconds"):
        text = request.query.get(name)
        if text is not None:
            try:
                int(text)
            except ValueError:
                raise errors.bad_request(
                    f'{name}: Invalid value: "{text}": strconv.ParseInt: parsing "{text}": '
                    f'invalid syntax') from None
    match = request.query.get("resourceVersionMatch", "")
    version = request.query.get("resourceVersion", "")
    cause = None
    if match not in _MATCHES:
        cause = errors.not_supported("resourceVersionMatch", match, list(_MATCHES))
    elif match and not version:
        cause = errors.forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden "
                                 "unless resourceVersion is provided")
    elif match == "Exact" and version == "0":
        cause = errors.forbidden("resourceVersionMatch", 'resourceVersionMatch "exact" is '
                                 'forbidden for resourceVersion "0"')
    if cause:
        raise errors.invalid_object("ListOptions", "", [cause], "meta.k8s.io")
