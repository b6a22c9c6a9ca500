"""handoffkit — keep the security finding record canonical while remediation moves into tickets.

The public API is small; everything else lives in modules named after what they hold
(``handoffkit.routing``, ``handoffkit.reconcile``, ``handoffkit.views`` …).
"""

__version__ = "0.1.0"

from handoffkit.errors import HandoffkitError  # noqa: E402
from handoffkit.findings import as_of as findings_as_of  # noqa: E402
from handoffkit.findings import current as current_findings  # noqa: E402
from handoffkit.reconcile import reconcile  # noqa: E402
from handoffkit.routing import route  # noqa: E402
from handoffkit.scans import ingest_scan  # noqa: E402
from handoffkit.store import Store, open_store  # noqa: E402
from handoffkit.tickets import ingest_tickets  # noqa: E402
from handoffkit.verification import verify as verify_closure  # noqa: E402

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
]
