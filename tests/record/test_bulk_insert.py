"""The bulk insert fast path stores what SQLAlchemy's ``insert(table)`` stores, NULL columns included."""

from __future__ import annotations

from sqlalchemy import insert, select

from handoffkit.record import schema
from handoffkit.record.store import Store, bulk_insert


def test_no_column_has_a_default_so_leaving_out_an_all_null_column_stores_null() -> None:
    # bulk_insert drops columns that are None in every row; a default would then be stored instead.
    with_default = [
        f"{t.name}.{c.name}"
        for t in schema.metadata.tables.values()
        for c in t.columns
        if c.default is not None or c.server_default is not None
    ]
    assert with_default == []


def _assets(prefix: str) -> list[dict[str, object]]:
    # owner_team is None in every row (left out), owner_name only in the second (kept).
    return [
        {
            "engagement": "ACME",
            "asset_ref": f"{prefix}-host-{i}",
            "position": i,
            "is_pattern": False,
            "owner_role": "App owner",
            "owner_team": None,
            "owner_name": "Ana Silva" if i == 1 else None,
            "exposure": None,
            "data_sensitivity": None,
            "lifecycle": "active",
        }
        for i in range(3)
    ]


def test_bulk_insert_stores_the_same_rows_as_sqlalchemy_insert(store: Store, engagement: str) -> None:
    t = schema.assets
    with store.write() as conn:
        conn.execute(t.delete().where(t.c.engagement == engagement))
        conn.execute(insert(t), _assets("orm"))
        bulk_insert(conn, t, _assets("bulk"))
    with store.read() as conn:
        stored = [{**r._mapping} for r in conn.execute(select(t).order_by(t.c.asset_ref))]
    by_orm, by_bulk = (
        [{**r, "asset_ref": r["asset_ref"].removeprefix(p)} for r in stored if r["asset_ref"].startswith(p)]
        for p in ("orm", "bulk")
    )
    assert len(by_bulk) == 3
    assert by_bulk == by_orm
    assert [r["owner_name"] for r in by_bulk] == [None, "Ana Silva", None]
    assert {r["owner_team"] for r in by_bulk} == {None}
