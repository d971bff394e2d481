"""Cases: what this node is responsible for and what its analysts see and do.

Owns filing reports into cases (one open case per canonical URL, joins,
reappearances, known-content links), the analysts' read side (cases, pages,
statistics), analysts' actions on a case, and the overdue-takedown watch.

May use: ``core``, ``store``, ``status`` (every change of a case is a signed
status update), ``runtime``.
"""
