"""handoffkit — keep the security finding record canonical while remediation moves into tickets.

The public API is small: a store, the ingest/route/verify entry points, the record as of a date, and
the ``reconcile`` and ``views`` modules (``hk.reconcile.reconcile(...)``, ``hk.views.facts(...)``).
Everything else lives in modules named after what they hold (``handoffkit.routing`` …).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from handoffkit.errors import HandoffkitError
from handoffkit.version import __version__

# The names below load on first use (PEP 562): the CLI imports only what its command needs, and a
# command that never touches pandas does not pay for it at start-up.
_LAZY = {
    "Store": ("handoffkit.store", "Store"),
    "open_store": ("handoffkit.store", "open_store"),
    "current_findings": ("handoffkit.findings", "current"),
    "findings_as_of": ("handoffkit.findings", "as_of"),
    "ingest_scan": ("handoffkit.scans", "ingest_scan"),
    "ingest_tickets": ("handoffkit.tickets", "ingest_tickets"),
    "route": ("handoffkit.routing", "route"),
    "verify_closure": ("handoffkit.verification", "verify"),
    "reconcile": ("handoffkit.reconcile", None),
    "views": ("handoffkit.views", None),
}

if TYPE_CHECKING:  # what static tools and IDEs see
    from handoffkit import reconcile, views
    from handoffkit.findings import as_of as findings_as_of
    from handoffkit.findings import current as current_findings
    from handoffkit.routing import route
    from handoffkit.scans import ingest_scan
    from handoffkit.store import Store, open_store
    from handoffkit.tickets import ingest_tickets
    from handoffkit.verification import verify as verify_closure


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'handoffkit' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


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
