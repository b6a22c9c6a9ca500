"""The seal of an evidence pack, checked with the pack and the signer's public key alone.

:func:`handoffkit.report.pack.render` seals a pack with ``manifest.json`` (every file's SHA-256 and size,
the activity log's head) and, when a signing key is configured, ``manifest.json.sig`` (Ed25519 over the
manifest's bytes, :mod:`handoffkit.record.signatures`). :func:`verify_pack` checks, in this order, the
signature (so nothing the manifest says is believed before it is known to be the signer's), then each
listed file's size and digest, then that no file was added beside them. It needs no database: the log
itself is checked against the manifest's anchor by ``handoffkit log verify --anchor … --public-key …``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoffkit.errors import IntegrityError
from handoffkit.record import signatures
from handoffkit.record.canonical import sha256_file
from handoffkit.report.pack import MANIFEST, SIGNATURE

#: How many problems the one-line error spells out (the count says how many there are).
SHOWN = 5


@dataclass
class PackCheck:
    """What :func:`verify_pack` found in a pack that holds."""

    pack: Path
    files: int
    signed_by: str
    chain_head: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": str(self.pack),
            "files": self.files,
            "signed_by": self.signed_by,
            "chain_head": self.chain_head,
        }


def verify_pack(pack_dir: str | Path, public_key: str | Path) -> PackCheck:
    """Check a pack's signature, then every file the manifest lists, then that none was added.

    Raises:
        IntegrityError: the signature is missing or does not verify, or files differ from the manifest
            (the message names each file and what differs, and how many problems there are).
        ConfigError: the public key cannot be read.
    """
    folder = Path(pack_dir)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise IntegrityError(f"{manifest_path}: not found; {folder} is not an evidence pack")
    signed_by = signatures.check(manifest_path, public_key)
    manifest = json.loads(manifest_path.read_bytes())  # signed by the key's holder: well-formed as written
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    problems = [p for name, entry in sorted(listed.items()) if (p := _file_problem(folder, name, entry))]
    present = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name not in (MANIFEST, SIGNATURE) and not p.name.startswith(".")
    }
    problems += [f"{name}: not listed in the manifest (added after sealing)" for name in sorted(present - set(listed))]
    if problems:
        shown = "; ".join(problems[:SHOWN]) + (f"; … {len(problems) - SHOWN} more" if len(problems) > SHOWN else "")
        raise IntegrityError(f"{folder}: {len(problems)} file(s) differ from the signed manifest: {shown}")
    return PackCheck(folder, len(listed), signed_by, manifest.get("chain_head", {}))


def _file_problem(folder: Path, name: str, entry: dict[str, Any]) -> str | None:
    path = folder / name
    if not path.is_file():
        return f"{name}: missing"
    size = path.stat().st_size
    if size != entry.get("bytes"):
        return f"{name}: {size} bytes, the manifest records {entry.get('bytes')}"
    digest = sha256_file(path)
    if digest != entry.get("sha256"):
        return f"{name}: sha256 {digest}, the manifest records {entry.get('sha256')}"
    return None
