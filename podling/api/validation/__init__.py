"""Kubernetes API validation for the kinds podling serves (``pkg/apis/core/validation``, 1.32).

Every function takes JSON dicts (already defaulted) and returns ``list[Cause]``; an empty list
means valid. None of them raises, whatever the input shape. Messages, reasons and field paths
follow Kubernetes so kubectl users and tests see the same text.
"""

from podling.api.validation._util import not_found
from podling.api.validation.configdata import (validate_config_map, validate_config_map_update,
                                               validate_secret, validate_secret_update)
from podling.api.validation.meta import (validate_annotations, validate_labels,
                                         validate_object_meta, validate_object_meta_update)
from podling.api.validation.others import (validate_binding, validate_event, validate_lease,
                                           validate_namespace, validate_namespace_update,
                                           validate_node, validate_node_update)
from podling.api.validation.pod import validate_pod, validate_pod_spec
from podling.api.validation.pod_update import (SPEC_FORBIDDEN_PREFIX,
                                               validate_pod_ephemeral_containers_update,
                                               validate_pod_status_update, validate_pod_update)
from podling.api.validation.serviceaccount import (validate_service_account,
                                                   validate_service_account_update,
                                                   validate_token_request)

__all__ = [
    "SPEC_FORBIDDEN_PREFIX", "not_found", "validate_annotations", "validate_binding",
    "validate_config_map", "validate_config_map_update", "validate_secret",
    "validate_secret_update",
    "validate_event", "validate_labels", "validate_lease", "validate_namespace",
    "validate_namespace_update", "validate_node", "validate_node_update",
    "validate_object_meta", "validate_object_meta_update", "validate_pod",
    "validate_pod_ephemeral_containers_update", "validate_pod_spec",
    "validate_pod_status_update", "validate_pod_update",
    "validate_service_account", "validate_service_account_update", "validate_token_request",
]
