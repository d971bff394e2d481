"""Cases written straight into storage, for tests of what reads them."""

from __future__ import annotations

import hashlib
from datetime import datetime

from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.store.cases import CaseRecord


def case_record(
    url: str,
    at: datetime,
    *,
    case_id: str = "",
    status: CaseStatus = CaseStatus.RECEIVED,
    is_open: bool = True,
    last_sequence: int = 0,
) -> CaseRecord:
    """A case of hotline-nl hosted in NL, opened ``at``."""
    key = hashlib.sha256(url.encode()).digest()
    case_id = case_id or new_uuid7()
    return CaseRecord(
        case_id, url, key, "NL", "hotline-nl", int(status), is_open, None, last_sequence, at, at
    )
