"""Who acted through the operator identity: the analyst a HotlineService call names.

The console calls as the node's own member and names the logged-in analyst
in the call metadata (``federation.wire.metadata.ANALYST_METADATA``). Only
the node's own member reaches HotlineService at all, so only it can name an
analyst; the name is checked here and each call naming one is written to the
operator audit with its outcome, refusals included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc

from federation.api.errors import code_name
from federation.cases import OperatorAudit
from federation.core.errors import BAD_ANALYST_NAME, HfedError, InvalidArgumentError
from federation.wire.metadata import ANALYST_METADATA, MAX_ANALYST_NAME

ANALYST_RE = re.compile(rf"[A-Za-z0-9._@-]{{1,{MAX_ANALYST_NAME}}}")


def analyst_of(context: grpc.ServicerContext) -> str:
    """The analyst the call names, "" when it names none."""
    for key, value in context.invocation_metadata() or ():
        if key == ANALYST_METADATA:
            if not isinstance(value, str) or not ANALYST_RE.fullmatch(value):
                raise InvalidArgumentError(
                    BAD_ANALYST_NAME,
                    f"{ANALYST_METADATA} must be 1-{MAX_ANALYST_NAME} of A-Z a-z 0-9 . _ @ -",
                )
            return value
    return ""


@dataclass(slots=True)
class Entry:
    """What a call fills in for its audit entry: the case and a short detail."""

    case_id: str = ""
    detail: str = ""


@contextmanager
def audited(audit: OperatorAudit, analyst: str, rpc: str, case_id: str = "") -> Iterator[Entry]:
    """Write the operator audit entry of the call in the block (none without an analyst)."""
    entry = Entry(case_id)
    if not analyst:
        yield entry
        return
    try:
        yield entry
    except HfedError as exc:
        detail = f"{exc.reason}: {exc.public_message}"
        audit.record(analyst, rpc, entry.case_id, code_name(exc), detail)
        raise
    audit.record(analyst, rpc, entry.case_id, "OK", entry.detail)
