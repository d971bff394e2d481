"""Pages of cases bounded in bytes as well as in count.

Each case of a page carries at most a hundred reports, yet reports can be
large (a long URL and note, many hashes): a page of page_size such cases
could still outgrow what a client accepts, and then every later attempt at
that page would fail the same way. A page therefore ends early, before it
passes MAX_PAGE_BYTES, with a token that resumes at the first case left out.
"""

from __future__ import annotations

from federation.cases.queries import CasePage, encode_token, yielding
from federation.wire.convert import case_to_proto
from hfp.v1 import case_pb2

#: The most a page of cases grows to (well under the 4 MiB clients accept by
#: default); a page always holds at least one case.
MAX_PAGE_BYTES = 2 * 1024 * 1024


def bounded_cases(page: CasePage) -> tuple[list[case_pb2.Case], str]:
    """The wire cases of ``page`` that fit in MAX_PAGE_BYTES, and the next token."""
    messages: list[case_pb2.Case] = []
    size = 0
    for view in yielding(page.cases):
        message = case_to_proto(view)
        size += message.ByteSize()
        if messages and size > MAX_PAGE_BYTES:
            last = page.cases[len(messages) - 1]
            return messages, encode_token(last.created_at, last.case_id)
        messages.append(message)
    return messages, page.next_page_token
