"""handoffkit — keep the security finding record canonical while remediation moves into tickets.

The public API: a store, the ingest / route / verify entry points, the record now and as of an
instant, and the modules analysts and notebooks read — ``reconcile`` (``hk.reconcile.reconcile``),
``views`` (frames), ``facts`` (a period's figures and narrative), ``charts`` (Altair) and ``display``
(escaped HTML for report pages).
The package's folders are its layers: ``record`` (the record and its activity log) under ``ingest``,
``tickets`` and ``workflow``, then ``reconcile``, ``report``, ``demo`` and the ``cli``.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from handoffkit.errors import HandoffkitError
from handoffkit.version import __version__

# The names below load on first use (PEP 562): the CLI imports only what its command needs, and a
# command that never touches pandas does not pay for it at start-up.
_LAZY = {
    "Store": ("handoffkit.record.store", "Store"),
    "open_store": ("handoffkit.record.store", "open_store"),
    "current_findings": ("handoffkit.record.findings", "current"),
    "findings_as_of": ("handoffkit.record.findings", "as_of"),
    "ingest_scan": ("handoffkit.ingest.pipeline", "ingest_scan"),
    "ingest_tickets": ("handoffkit.tickets.snapshots", "ingest_tickets"),
    "route": ("handoffkit.workflow.routing", "route"),
    "verify_closure": ("handoffkit.workflow.verification", "verify"),
    "reconcile": ("handoffkit.reconcile", None),
    "views": ("handoffkit.report.views", None),
    "facts": ("handoffkit.report.facts", None),
    "charts": ("handoffkit.report.charts", None),
    "display": ("handoffkit.report.display", None),
}

if TYPE_CHECKING:  # what static tools and IDEs see
    from handoffkit import reconcile
    from handoffkit.ingest.pipeline import ingest_scan
    from handoffkit.record.findings import as_of as findings_as_of
    from handoffkit.record.findings import current as current_findings
    from handoffkit.record.store import Store, open_store
    from handoffkit.report import charts, display, facts, views
    from handoffkit.tickets.snapshots import ingest_tickets
    from handoffkit.workflow.routing import route
    from handoffkit.workflow.verification import verify as verify_closure


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
    "charts",
    "current_findings",
    "display",
    "facts",
    "findings_as_of",
    "ingest_scan",
    "ingest_tickets",
    "open_store",
    "reconcile",
    "route",
    "verify_closure",
    "views",
]
