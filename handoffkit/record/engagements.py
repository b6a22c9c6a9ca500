"""Engagements: creating one, versioning its policy, loading its owners map."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from handoffkit.errors import ConfigError, NotFoundError
from handoffkit.record import owners, people, schema
from handoffkit.record.canonical import canonical_json, sha256_bytes
from handoffkit.record.log import Event, Source, append
from handoffkit.record.policy import Policy, load_policy, policy_from_document
from handoffkit.record.store import Store

KEY_LENGTH = schema.engagements.c.key.type.length
"""The engagement key's column width: a longer key is refused before any backend truncates or rejects it."""
#: The people directory read from the policy's folder when ``--people`` is not given (optional).
PEOPLE_FILE = "people.csv"


@dataclass
class InitResult:
    engagement: str
    created: bool
    policy_version: int
    policy_changed: bool
    owners_loaded: int | None
    defaulted: list[str]
    """The policy's fields the file does not state (their defaults apply; the checklist's first item fails)."""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def init(
    store: Store,
    key: str,
    policy_path: str | Path,
    *,
    actor: str,
    name: str | None = None,
    owners_path: str | Path | None = None,
    people_path: str | Path | None = None,
) -> InitResult:
    """Create the engagement (or update it): store the policy as a new version when it changed, load
    the owners map (the ``--owners`` file, else the policy's ``ownership.owners_file``) and the people
    directory (the ``--people`` file, else :data:`PEOPLE_FILE` beside the policy, when there is one).

    Every change is logged; running it again with the same files changes nothing.
    """
    if not key or not key.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"engagement key {key!r}: expected letters, digits, '-' or '_'")
    if len(key) > KEY_LENGTH:
        raise ConfigError(f"engagement key {key[:16]!r}… is {len(key)} characters; expected at most {KEY_LENGTH}")
    policy = load_policy(policy_path)
    defaulted = [name for name in Policy.model_fields if name not in policy.model_fields_set]
    policy_bytes = Path(policy_path).read_bytes()
    if owners_path is None and policy.ownership.owners_file:
        candidate = Path(policy_path).parent / policy.ownership.owners_file
        owners_path = candidate if candidate.exists() else None
    owner_rows, owner_bytes = owners.load_owners(owners_path) if owners_path else (None, b"")
    if people_path is None and (Path(policy_path).parent / PEOPLE_FILE).exists():
        people_path = Path(policy_path).parent / PEOPLE_FILE
    directory, people_bytes = people.load_people(people_path) if people_path else (None, b"")
    policy_source = Source(str(policy_path), sha256_bytes(policy_bytes))
    with store.write() as conn:
        now = store.now()
        existing = conn.execute(select(schema.engagements).where(schema.engagements.c.key == key)).first()
        created = existing is None
        version = existing.policy_version if existing else 0
        new_events: list[Event] = []
        if created:
            conn.execute(insert(schema.engagements).values(key=key, name=name or key, policy_version=0, created_at=now))
            new_events.append(Event(type="engagement_created", actor=actor, engagement=key, data={"name": name or key}))
        elif name and name != existing.name:
            conn.execute(update(schema.engagements).where(schema.engagements.c.key == key).values(name=name))
            new_events.append(
                Event(type="engagement_renamed", actor=actor, engagement=key, data={"from": existing.name, "to": name})
            )
        changed = created or _current_sha(conn, key, version) != policy.sha256()
        if changed:
            version += 1
            conn.execute(
                insert(schema.policies).values(
                    engagement=key,
                    version=version,
                    document=canonical_json(policy.document()),
                    sha256=policy.sha256(),
                    source_file=str(policy_path),
                    created_at=now,
                    actor=actor,
                )
            )
            conn.execute(
                update(schema.engagements).where(schema.engagements.c.key == key).values(policy_version=version)
            )
            new_events.append(
                Event(
                    type="policy_versioned",
                    actor=actor,
                    engagement=key,
                    source=policy_source,
                    data={
                        "version": version,
                        "sha256": policy.sha256(),
                        "document": policy.document(),
                        "defaulted": defaulted,
                    },
                )
            )
        loaded = None
        if owner_rows is not None and _owners_changed(conn, key, owner_rows):
            owners.replace_assets(conn, key, owner_rows)
            loaded = len(owner_rows)
            new_events.append(
                Event(
                    type="owners_loaded",
                    actor=actor,
                    engagement=key,
                    source=Source(str(owners_path), sha256_bytes(owner_bytes)),
                    data={"rows": owner_rows},
                )
            )
        current = people.directory(conn, key)
        if directory is not None and (current is None or current.rows() != directory.rows()):
            new_events.append(
                Event(
                    type=people.PEOPLE_LOADED,
                    actor=actor,
                    engagement=key,
                    source=Source(str(people_path), sha256_bytes(people_bytes)),
                    data={"rows": directory.rows()},
                )
            )
        append(conn, store, new_events)
    return InitResult(key, created, version, changed, loaded, defaulted)


def _current_sha(conn: Connection, key: str, version: int) -> str | None:
    p = schema.policies.c
    return conn.execute(select(p.sha256).where(p.engagement == key, p.version == version)).scalar()


def _owners_changed(conn: Connection, key: str, rows: list[dict[str, Any]]) -> bool:
    a = schema.assets
    current = [
        dict(r._mapping)
        for r in conn.execute(
            select(*[a.c[c] for c in (*owners.COLUMNS, "is_pattern", "position")])
            .where(a.c.engagement == key)
            .order_by(a.c.position)
        )
    ]
    return current != rows


def get(conn: Connection, key: str) -> Any:
    """The engagement row, or NotFoundError listing the known engagements."""
    row = conn.execute(select(schema.engagements).where(schema.engagements.c.key == key)).first()
    if row is None:
        known = conn.execute(select(schema.engagements.c.key).order_by(schema.engagements.c.key)).scalars().all()
        raise NotFoundError(f"no engagement {key!r}; known: {', '.join(known) or 'none (run handoffkit init)'}")
    return row


def policy(conn: Connection, key: str, version: int | None = None) -> Policy:
    """The engagement's active policy (or a given version)."""
    version = version or get(conn, key).policy_version
    p = schema.policies.c
    doc = conn.execute(select(p.document).where(p.engagement == key, p.version == version)).scalar_one()
    return policy_from_document(json.loads(doc))


def policy_at(conn: Connection, key: str, when: str) -> Policy:
    """The policy in force at ``when`` (canonical instant text): the last version stored at or before it,
    or the first version when the engagement is younger than ``when``."""
    p = schema.policies.c
    version = (
        conn.execute(select(func.max(p.version)).where(p.engagement == key, p.created_at <= when)).scalar()
        or conn.execute(select(func.min(p.version)).where(p.engagement == key)).scalar()
    )
    if version is None:
        get(conn, key)  # an unknown engagement: NotFoundError naming the known ones
        raise NotFoundError(f"engagement {key!r} has no policy")
    return policy(conn, key, version)


def list_engagements(store: Store) -> list[dict[str, Any]]:
    """Every engagement with its name, policy version and finding count."""
    e, f = schema.engagements, schema.findings
    counts = select(f.c.engagement, func.count().label("n")).group_by(f.c.engagement).subquery()
    with store.read() as conn:
        rows = conn.execute(
            select(e.c.key, e.c.name, e.c.policy_version, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.engagement == e.c.key)
            .order_by(e.c.key)
        ).all()
    return [{"key": r[0], "name": r[1], "policy_version": r[2], "findings": r[3]} for r in rows]
