"""handoffkit — keep the security finding record canonical while remediation moves into tickets.

The public API is small: a store, the ingest/route/verify entry points, the record as of a date, and
the ``reconcile`` and ``views`` modules (``hk.reconcile.reconcile(...)``, ``hk.views.facts(...)``).
Everything else lives in modules named after what they hold (``handoffkit.routing`` …).
"""

from handoffkit import reconcile, views
from handoffkit.errors import HandoffkitError
from handoffkit.findings import as_of as findings_as_of
from handoffkit.findings import current as current_findings
from handoffkit.routing import route
from handoffkit.scans import ingest_scan
from handoffkit.store import Store, open_store
from handoffkit.tickets import ingest_tickets
from handoffkit.verification import verify as verify_closure
from handoffkit.version import __version__

__all__ = [
    "HandoffkitError",
    "Store",
    "__version__",
    "current_findings",
    "findings_as_of",
    "ingest_scan",
    "ingest_tickets",
    "open_store",
    "reconcile",
    "route",
    "verify_closure",
    "views",
]
