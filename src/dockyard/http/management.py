"""The whole management API: the accounts operations of ``http/api.py`` and the groups that other
modules add (each a tuple of ``Operation`` and a handler object with a ``_<name>`` per operation).

``ALL_OPERATIONS`` is what ``/api/v1/openapi.json`` lists; the tests that walk every operation
(the OpenAPI check, the authorization fuzzer) walk this.
"""

from __future__ import annotations

from dockyard.http import api_admission, api_policies, api_scan, api_signatures, jobs, repositories, usage
from dockyard.http.api import OPERATIONS, ApiGroup, ManagementApi, Operation
from dockyard.http.api_retention import OPERATIONS as RETENTION_OPERATIONS
from dockyard.http.auth import Guard
from dockyard.services.accounts import AccountsService

# Each group's operations, in the order the document lists them (add a group here and below).
GROUP_OPERATIONS: tuple[tuple[Operation, ...], ...] = (
    RETENTION_OPERATIONS,
    api_policies.OPERATIONS,
    jobs.OPERATIONS,
    repositories.OPERATIONS,
    usage.OPERATIONS,
    api_admission.OPERATIONS,
    api_signatures.OPERATIONS,
    api_scan.OPERATIONS,
)

ALL_OPERATIONS: tuple[Operation, ...] = OPERATIONS + tuple(op for ops in GROUP_OPERATIONS for op in ops)


def management_api(guard: Guard, accounts: AccountsService, groups: list[ApiGroup]) -> ManagementApi:
    api = ManagementApi(guard, accounts, groups)
    assert tuple(api.operations) == ALL_OPERATIONS, "a group is missing from GROUP_OPERATIONS"
    return api
