"""Cases: what this node is responsible for and what its analysts see and do.

Owns filing reports into cases (one open case per canonical URL, joins,
reappearances, known-content links), the analysts' read side (cases, pages,
statistics), analysts' actions on a case, the operator audit of those actions,
the overdue-takedown watch, following the filings of other node processes on
the same database, and the reporter's side: what became of the reports we
sent (``authored``).

May use: ``core``, ``store``, ``status`` (every change of a case is a signed
status update), ``runtime``.
"""

from federation.cases.actions import CaseActions, StatusChange
from federation.cases.audit import OperatorAudit
from federation.cases.authored import AuthoredReports
from federation.cases.changes import CaseChanges
from federation.cases.filing import CaseBook, Filed, Filing, FilingBatch, PdqSearch
from federation.cases.follower import FilingFollower
from federation.cases.lookup import CaseLookup
from federation.cases.overdue import OverdueWatcher
from federation.cases.queries import CasePage, HistoryPage, OverduePolicy, ReportPage

__all__ = [
    "AuthoredReports",
    "CaseActions",
    "CaseBook",
    "CaseChanges",
    "CaseLookup",
    "CasePage",
    "Filed",
    "Filing",
    "FilingBatch",
    "FilingFollower",
    "HistoryPage",
    "OperatorAudit",
    "OverduePolicy",
    "OverdueWatcher",
    "PdqSearch",
    "ReportPage",
    "StatusChange",
]
