"""Code run in child processes by the concurrency tests (importable, so ``spawn`` can find it)."""

from __future__ import annotations

from typing import Any

from handoffkit.record import findings, log
from handoffkit.record.store import Store


def hammer(url: str, worker: int, count: int, finding_id: str | None, start: Any, results: Any) -> None:
    """Append ``count`` events, each in its own write transaction: plain log entries, or (with a
    ``finding_id``) a change to that finding with its event. Reports every error it met."""
    errors: list[str] = []
    store = Store(url)
    actor = f"Worker {worker}"
    start.wait()
    for i in range(count):
        try:
            if finding_id is None:
                log.log_event(store, log.Event(type="note", actor=actor, data={"worker": worker, "i": i}))
            else:
                with store.write() as conn:
                    row = findings.get(conn, finding_id)._mapping
                    findings.change(
                        conn,
                        store,
                        row,
                        {"title": f"edited by {actor} #{i}"},
                        type="finding_edited",
                        actor=actor,
                        data={"i": i},
                    )
        except Exception as exc:  # every failure is reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
    store.dispose()
    results.put((worker, errors))
