"""Ed25519 key pairs and detached signatures; a signed anchor against an attacker who rewrites the log.

The attacker has write access to the database (triggers dropped) and to the pack's folder, but not the
signer's private key. Every case ends with the same two checks: the verification fails, and nothing was
appended to the log it found broken.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from handoffkit.errors import ConfigError, InputError, IntegrityError
from handoffkit.record import canonical, log, schema, signatures
from handoffkit.record.log import Event
from handoffkit.record.store import Store
from tests.builders import CHAIN_LENGTH, chain_head, drop_append_only, event_rows, set_events, write_log

# ------------------------------------------------------------------------------------------ keys


def test_generate_writes_a_pair_with_the_private_key_0600_and_never_overwrites(tmp_path: Path) -> None:
    private, public = tmp_path / "hk.key", tmp_path / "hk.pub"
    key_id = signatures.generate(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert signatures.fingerprint(signatures.load_public(public)) == key_id
    assert signatures.fingerprint(signatures.load_private(private).public_key()) == key_id
    before = private.read_bytes()
    with pytest.raises(ConfigError, match=r"hk\.key: already exists; refusing to overwrite"):
        signatures.generate(private, tmp_path / "other.pub")
    with pytest.raises(ConfigError, match="two different files"):
        signatures.generate(tmp_path / "same", tmp_path / "same")
    assert private.read_bytes() == before and not (tmp_path / "other.pub").exists()


def test_generate_refuses_a_symlink_planted_where_the_key_goes(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "hk.key").symlink_to(target)
    with pytest.raises(ConfigError, match="already exists"):
        signatures.generate(tmp_path / "hk.key", tmp_path / "hk.pub")
    assert not target.exists()


def test_generate_ignores_a_permissive_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        signatures.generate(tmp_path / "k", tmp_path / "k.pub")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_keys_that_cannot_serve_are_named(tmp_path: Path) -> None:
    private, public = tmp_path / "hk.key", tmp_path / "hk.pub"
    signatures.generate(private, public)
    (tmp_path / "junk.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"hk\.key: this is a private key; give the public key"):
        signatures.load_public(private)
    with pytest.raises(ConfigError, match=r"junk\.pem: not a PEM public key"):
        signatures.load_public(tmp_path / "junk.pem")
    with pytest.raises(ConfigError, match=r"junk\.pem: not an unencrypted PEM private key"):
        signatures.load_private(tmp_path / "junk.pem")
    with pytest.raises(ConfigError, match=r"hk\.pub: not an unencrypted PEM private key"):
        signatures.load_private(public)
    with pytest.raises(ConfigError, match=r"missing\.key: private key file not found"):
        signatures.load_private(tmp_path / "missing.key")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_an_auditor_can_check_a_signature_with_openssl_alone(tmp_path: Path) -> None:
    """The form the docs give auditors without handoffkit: raw Ed25519 over the file's bytes."""
    signatures.generate(tmp_path / "hk.key", tmp_path / "hk.pub")
    doc = tmp_path / "manifest.json"
    doc.write_text('{"chain_head": {"row_hash": "' + "a" * 64 + '", "seq": 3}}\n')
    signatures.sign(doc, tmp_path / "hk.key")
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "hk.pub"), "-rawin"]
    good = subprocess.run([*command, "-in", str(doc), "-sigfile", f"{doc}.sig"], capture_output=True, text=True)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stdout + good.stderr
    doc.write_text(doc.read_text() + " ")
    bad = subprocess.run([*command, "-in", str(doc), "-sigfile", f"{doc}.sig"], capture_output=True, text=True)
    assert bad.returncode != 0


# ------------------------------------------------------------------------------ a signed anchor


class Scene:
    """A 30-event log, a manifest anchoring its head signed by the signer, and the attacker's own key."""

    def __init__(self, store: Store, folder: Path) -> None:
        self.store, self.folder = store, folder
        self.signer_key, self.signer_pub = folder / "signer.key", folder / "signer.pub"
        self.mallory_key, self.mallory_pub = folder / "mallory.key", folder / "mallory.pub"
        signatures.generate(self.signer_key, self.signer_pub)
        signatures.generate(self.mallory_key, self.mallory_pub)
        self.manifest = folder / "pack" / "manifest.json"
        self.manifest.parent.mkdir()
        self.write_manifest(chain_head(store))
        signatures.sign(self.manifest, self.signer_key)
        self.rows = event_rows(store)

    def write_manifest(self, head: tuple[int, str], indent: int = 2) -> None:
        doc = {"chain_head": {"seq": head[0], "row_hash": head[1]}, "files": {}, "engagement": "ACME"}
        self.manifest.write_text(json.dumps(doc, indent=indent, sort_keys=True) + "\n", encoding="utf-8")

    def rewrite_history(self, at: int = 5) -> tuple[int, str]:
        """Change who did row ``at``, recompute every hash after it and the head: a self-consistent log."""
        rows = [dict(r) for r in self.rows]
        doc = json.loads(rows[at - 1]["payload"])
        doc["actor"] = rows[at - 1]["actor"] = "Mallory Moriarty"
        rows[at - 1]["payload"] = canonical.canonical_json(doc)
        for i in range(at - 1, len(rows)):
            rows[i]["prev_hash"] = rows[i - 1]["row_hash"] if i else schema.GENESIS_HASH
            rows[i]["row_hash"] = canonical.chain_hash(rows[i]["prev_hash"], rows[i]["payload"])
        head = (len(rows), rows[-1]["row_hash"])
        set_events(self.store, rows, head)
        return head

    def forge_append(self) -> tuple[int, str]:
        """Append events through the real code path (a well-chained tail) after the anchored head."""
        log.log_event(self.store, Event(type="exception_granted", actor="Mallory Moriarty", engagement="ACME"))
        return chain_head(self.store)


@pytest.fixture
def scene(store: Store, tmp_path: Path) -> Scene:
    write_log(store)
    drop_append_only(store)
    return Scene(store, tmp_path)


def _rewrite_log_and_manifest(s: Scene) -> None:
    s.write_manifest(s.rewrite_history())


def _rewrite_log_and_manifest_resigned_by_another_key(s: Scene) -> None:
    _rewrite_log_and_manifest(s)
    signatures.sign(s.manifest, s.mallory_key)


def _forged_append_with_manifest_resigned_by_another_key(s: Scene) -> None:
    s.write_manifest(s.forge_append())
    signatures.sign(s.manifest, s.mallory_key)


def _forged_append_with_manifest_rewritten_unsigned(s: Scene) -> None:
    s.write_manifest(s.forge_append())


def _signature_removed(s: Scene) -> None:
    _rewrite_log_and_manifest(s)
    signatures.signature_path(s.manifest).unlink()


def _signature_truncated(s: Scene) -> None:
    sig = signatures.signature_path(s.manifest)
    sig.write_bytes(sig.read_bytes()[:-1])


def _signature_emptied(s: Scene) -> None:
    signatures.signature_path(s.manifest).write_bytes(b"")


def _signature_byte_flipped(s: Scene) -> None:
    sig = signatures.signature_path(s.manifest)
    raw = bytearray(sig.read_bytes())
    raw[17] ^= 0x01
    sig.write_bytes(bytes(raw))


def _signature_as_base64_text(s: Scene) -> None:
    import base64

    sig = signatures.signature_path(s.manifest)
    sig.write_bytes(base64.b64encode(sig.read_bytes()))


def _signature_of_an_older_manifest(s: Scene) -> None:
    """The signer's genuine signature, but of the manifest of an earlier pack."""
    older = s.folder / "older.json"
    older.write_text('{"chain_head": {"row_hash": "' + s.rows[9]["row_hash"] + '", "seq": 10}}\n')
    signatures.sign(older, s.signer_key)
    s.write_manifest(s.rewrite_history())
    shutil.copy(f"{older}.sig", signatures.signature_path(s.manifest))


def _manifest_one_byte_added(s: Scene) -> None:
    s.manifest.write_bytes(s.manifest.read_bytes() + b" ")


def _manifest_reformatted_same_content(s: Scene) -> None:
    s.write_manifest(chain_head(s.store), indent=4)


def _manifest_seq_lowered_to_hide_a_truncation(s: Scene) -> None:
    kept = s.rows[:20]
    set_events(s.store, kept, (20, kept[-1]["row_hash"]))
    s.write_manifest((20, kept[-1]["row_hash"]))


#: Each: what the attacker does; all are caught by the signature check, before the anchor is read.
SIGNATURE_CASES: dict[str, Callable[[Scene], None]] = {
    "rewritten log + rewritten manifest": _rewrite_log_and_manifest,
    "rewritten log + manifest re-signed by another key": _rewrite_log_and_manifest_resigned_by_another_key,
    "forged append after the anchor + manifest re-signed by another key": (
        _forged_append_with_manifest_resigned_by_another_key
    ),
    "forged append after the anchor + manifest rewritten": _forged_append_with_manifest_rewritten_unsigned,
    "rewritten log + manifest + signature file removed": _signature_removed,
    "signature truncated by a byte": _signature_truncated,
    "signature emptied": _signature_emptied,
    "signature with one bit flipped": _signature_byte_flipped,
    "signature re-encoded as base64": _signature_as_base64_text,
    "the signer's signature of an older manifest": _signature_of_an_older_manifest,
    "manifest with one byte added": _manifest_one_byte_added,
    "manifest re-serialised with the same content": _manifest_reformatted_same_content,
    "truncated log + manifest's seq lowered": _manifest_seq_lowered_to_hide_a_truncation,
}


def test_the_signed_anchor_verifies_and_the_check_is_logged_with_the_key(scene: Scene) -> None:
    head = chain_head(scene.store)
    result = log.verify_logged(scene.store, "Chen Wei", str(scene.manifest), scene.signer_pub)
    assert result.ok and result.anchor == {"seq": head[0], "row_hash": head[1]}
    [logged] = event_rows(scene.store)[-1:]
    data = json.loads(logged["payload"])["data"]
    assert (logged["type"], data["anchor_signed_by"]) == (
        "log_verified",
        signatures.fingerprint(signatures.load_public(scene.signer_pub)),
    )


@pytest.mark.parametrize("case", SIGNATURE_CASES)
def test_tampering_is_caught_by_the_signature_and_nothing_is_appended(scene: Scene, case: str) -> None:
    SIGNATURE_CASES[case](scene)
    before = (event_rows(scene.store), chain_head(scene.store))
    with pytest.raises(IntegrityError, match=r"manifest\.json\.sig: ") as caught:
        log.verify_logged(scene.store, "Chen Wei", str(scene.manifest), scene.signer_pub)
    assert "\n" not in str(caught.value)
    assert (event_rows(scene.store), chain_head(scene.store)) == before


@pytest.mark.parametrize(
    "case",
    [
        "rewritten log + rewritten manifest",
        "rewritten log + manifest re-signed by another key",
        "forged append after the anchor + manifest re-signed by another key",
    ],
)
def test_without_the_public_key_those_rewrites_pass(scene: Scene, case: str) -> None:
    """The control: the anchor alone agrees with a log rewritten together with its manifest — which is
    why the signature is checked first."""
    SIGNATURE_CASES[case](scene)
    assert log.verify_logged(scene.store, "Chen Wei", str(scene.manifest)).ok


def test_the_attackers_own_public_key_is_not_the_signers(scene: Scene) -> None:
    """Re-signed by Mallory, the manifest verifies with Mallory's key: an auditor must hold the signer's
    public key from elsewhere (the docs say so), and the fingerprint logged names the key that was used."""
    _rewrite_log_and_manifest_resigned_by_another_key(scene)
    result = log.verify_logged(scene.store, "Chen Wei", str(scene.manifest), scene.mallory_pub)
    assert result.ok
    logged = json.loads(event_rows(scene.store)[-1]["payload"])["data"]["anchor_signed_by"]
    assert logged == signatures.fingerprint(signatures.load_public(scene.mallory_pub))
    assert logged != signatures.fingerprint(signatures.load_public(scene.signer_pub))


ANCHOR_CASES = {
    "history rewritten beneath a genuine signed manifest": (
        lambda s: s.rewrite_history(),
        "the chain was rewritten",
    ),
    "log truncated and head forged beneath a genuine signed manifest": (
        lambda s: set_events(s.store, s.rows[:20], (20, s.rows[19]["row_hash"])),
        "the log was truncated",
    ),
}


@pytest.mark.parametrize("case", ANCHOR_CASES)
def test_a_genuine_signature_then_the_anchor_catches_the_log_rewritten_beneath_it(scene: Scene, case: str) -> None:
    tamper, says = ANCHOR_CASES[case]
    tamper(scene)
    before = (event_rows(scene.store), chain_head(scene.store))
    with pytest.raises(IntegrityError, match=says):
        log.verify_logged(scene.store, "Chen Wei", str(scene.manifest), scene.signer_pub)
    assert (event_rows(scene.store), chain_head(scene.store)) == before


def test_a_public_key_without_an_anchor_or_a_private_key_for_a_public_one_is_refused(scene: Scene) -> None:
    before = chain_head(scene.store)
    with pytest.raises(InputError, match="give the anchor"):
        log.verify_logged(scene.store, "Chen Wei", None, scene.signer_pub)
    with pytest.raises(ConfigError, match="this is a private key"):
        log.verify_logged(scene.store, "Chen Wei", str(scene.manifest), scene.signer_key)
    assert chain_head(scene.store) == before
    assert before[0] == CHAIN_LENGTH
