"""A signed evidence pack end to end: `keys generate`, `report` with a signing key, then an auditor's
`pack verify` and `log verify --anchor --public-key`, and the pack tampered with file by file."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import select

from handoffkit.cli import cli
from handoffkit.record import schema, signatures
from handoffkit.record.store import Store
from handoffkit.report import pack
from tests.builders import ACTOR, copy_sqlite

from .packs import params_file

pytestmark = [pytest.mark.slow]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def signed(demo_sqlite: tuple[str, dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The activity-log page of the demo rendered with a key given by the environment variable."""
    work = tmp_path_factory.mktemp("signed")
    url = copy_sqlite(demo_sqlite[0], work / "demo.db")
    made = invoke("keys", "generate", "--private-key", str(work / "hk.key"))
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith(f"wrote {work / 'hk.key'} (private, mode 0600) and {work / 'hk.key.pub'}")
    params = params_file(work / "q.yaml", "DEMO", notebooks=["activity_log"])
    assert not pack.signing_key_configured(yaml.safe_load(params.read_text()))
    out = work / "out"
    out.mkdir()
    (out / "manifest.json.sig").write_bytes(b"stale signature of an earlier run")
    result = invoke(
        "--db",
        url,
        "report",
        "--params",
        str(params),
        "--out",
        str(out),
        "--actor",
        ACTOR,
        env={"HANDOFFKIT_SIGNING_KEY": str(work / "hk.key")},
    )
    assert result.exit_code == 0, result.output
    return {"url": url, "out": out, "work": work, "pub": work / "hk.key.pub", "output": result.stdout}


def test_the_report_signs_the_manifest_and_records_no_secret(signed: dict) -> None:
    out, work = signed["out"], signed["work"]
    sig = out / "manifest.json.sig"
    assert f"{sig} (Ed25519 signature of the manifest)" in signed["output"]
    assert len(sig.read_bytes()) == 64
    manifest = json.loads((out / "manifest.json").read_text())
    key_id = signatures.fingerprint(signatures.load_public(signed["pub"]))
    assert manifest["signing"] == {
        "algorithm": "Ed25519",
        "signature_file": "manifest.json.sig",
        "public_key_sha256": key_id,
    }
    assert "manifest.json.sig" not in manifest["files"]  # nothing in the manifest depends on its signature
    index = (out / "index.html").read_text()
    assert 'signature is <a href="manifest.json.sig">' in index and "not signed" not in index
    assert str(work / "hk.key") not in (out / "manifest.json").read_text()
    store = Store(signed["url"], create=False)
    try:
        with store.read() as conn:
            payloads = conn.execute(select(schema.events.c.payload)).scalars().all()
    finally:
        store.dispose()
    private_pem = (work / "hk.key").read_text()
    assert not any("hk.key" in p or private_pem.splitlines()[1] in p for p in payloads)
    rendered = [json.loads(p) for p in payloads if '"type":"report_rendered"' in p][-1]
    assert rendered["data"]["signed"] is True


def test_an_auditor_with_the_public_key_verifies_the_pack_and_the_log(signed: dict, tmp_path: Path) -> None:
    checked = invoke("pack", "verify", str(signed["out"]), "--public-key", str(signed["pub"]))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(f"ok: {signed['out']}: manifest signed by key sha256 ")
    url = copy_sqlite(signed["url"], tmp_path / "copy.db")
    anchored = invoke(
        "--db",
        url,
        "log",
        "verify",
        "--anchor",
        str(signed["out"] / "manifest.json"),
        "--public-key",
        str(signed["pub"]),
        "--actor",
        "Ivy Auditor",
    )
    assert anchored.exit_code == 0, anchored.output
    assert "anchor seq" in anchored.stdout and "matches" in anchored.stdout


def _edit_csv(out: Path) -> None:
    path = out / "activity_log.csv"
    path.write_bytes(path.read_bytes().replace(b"success", b"denied_", 1))


def _remove_page(out: Path) -> None:
    (out / "activity_log.html").unlink()


def _add_page(out: Path) -> None:
    (out / "extra.html").write_text("<p>added later</p>")


def _truncate_quality(out: Path) -> None:
    path = out / "data_quality.json"
    path.write_bytes(path.read_bytes()[:-10])


def _relist_edited_csv_in_a_manifest_resigned_by_another_key(out: Path) -> None:
    _edit_csv(out)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["files"]["activity_log.csv"]
    entry["sha256"] = hashlib.sha256((out / "activity_log.csv").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    signatures.generate(out.parent / "mallory.key", out.parent / "mallory.pub")
    signatures.sign(out / "manifest.json", out.parent / "mallory.key")


def _remove_signature(out: Path) -> None:
    (out / "manifest.json.sig").unlink()


PACK_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "activity CSV edited": (_edit_csv, "activity_log.csv: sha256 "),
    "page removed": (_remove_page, "activity_log.html: missing"),
    "page added": (_add_page, "extra.html: not listed in the manifest"),
    "quality results truncated": (_truncate_quality, "data_quality.json: "),
    "CSV edited, manifest relisted and re-signed by another key": (
        _relist_edited_csv_in_a_manifest_resigned_by_another_key,
        "the signature does not verify",
    ),
    "signature removed": (_remove_signature, "signature file not found"),
}


@pytest.mark.parametrize("case", PACK_CASES)
def test_a_tampered_pack_fails_pack_verify_naming_what_differs(signed: dict, tmp_path: Path, case: str) -> None:
    tamper, says = PACK_CASES[case]
    copy = tmp_path / "pack"
    shutil.copytree(signed["out"], copy)
    tamper(copy)
    result = invoke("pack", "verify", str(copy), "--public-key", str(signed["pub"]))
    assert (result.exit_code, result.stdout) == (7, ""), result.output
    assert result.stderr.startswith("handoffkit: error: ") and result.stderr.count("\n") == 1
    assert says in result.stderr, result.stderr


def test_a_signing_key_that_cannot_sign_fails_the_report_before_any_notebook(signed: dict, tmp_path: Path) -> None:
    params = params_file(tmp_path / "q.yaml", "DEMO", notebooks=["activity_log"])
    doc = yaml.safe_load(params.read_text())
    doc["signing_key"] = str(signed["pub"])
    params.write_text(yaml.safe_dump(doc))
    assert pack.signing_key_configured(doc)
    url = copy_sqlite(signed["url"], tmp_path / "copy.db")
    result = invoke("--db", url, "report", "--params", str(params), "--out", str(tmp_path / "o"), "--actor", ACTOR)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"handoffkit: error: {signed['pub']}: not an unencrypted PEM private key (")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "o" / "notebooks").exists()
