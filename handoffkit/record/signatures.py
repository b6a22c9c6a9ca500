"""Detached Ed25519 signatures over files: how an evidence pack's manifest is signed and checked.

A key pair is two PEM files: the private key (PKCS#8, unencrypted, created with mode 0600 and never
read into the record) and the public key (SubjectPublicKeyInfo), which is all an auditor needs. A
signature is the raw 64 bytes Ed25519 gives over the file's exact bytes, written beside it as
``<file>.sig`` — the form ``openssl pkeyutl -verify -rawin`` reads, so a pack can be checked without
handoffkit. The signed file records nothing that depends on its signature.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoffkit.errors import ConfigError, IntegrityError

ALGORITHM = "Ed25519"
SUFFIX = ".sig"
SIGNATURE_BYTES = 64
#: The environment variable naming the private key's file (the report parameters' ``signing_key`` wins).
KEY_ENV = "HANDOFFKIT_SIGNING_KEY"


def signature_path(path: str | Path) -> Path:
    """Where the detached signature of ``path`` lives: ``<path>.sig``."""
    return Path(f"{path}{SUFFIX}")


def generate(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair; returns the public key's fingerprint (:func:`fingerprint`).

    The private key file is created with mode 0600 from the start (never world-readable, even briefly);
    neither file may exist already, so a key is never overwritten.

    Raises:
        ConfigError: a target file exists, or its folder cannot be written.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.resolve() == public_path.resolve():
        raise ConfigError(f"{private_path}: the private and public key need two different files")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path}: already exists; refusing to overwrite a key (move it away or choose another)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _create(private_path, private_pem, 0o600)
    _create(public_path, public_pem, 0o644)
    return fingerprint(key.public_key())


def _create(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the key file ({exc.strerror})") from exc
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # the umask may have taken bits off; the mode is exactly this
        out.write(data)


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, in hex: names a key without revealing anything secret."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private(path: str | Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM, unencrypted).

    Raises:
        ConfigError: the file is missing, unreadable, or not an Ed25519 private key.
    """
    data = _read_key(path, "private")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM private key ({_first_line(exc)})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: expected an {ALGORITHM} private key, found {type(key).__name__}")
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM).

    Raises:
        ConfigError: the file is missing, unreadable, or not an Ed25519 public key (a private key
            given by mistake is named as such).
    """
    data = _read_key(path, "public")
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"{path}: this is a private key; give the public key (the .pub file) to verify")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM public key ({_first_line(exc)})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: expected an {ALGORITHM} public key, found {type(key).__name__}")
    return key


def _read_key(path: str | Path, kind: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {kind} key file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {kind} key file ({exc.strerror})") from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def sign(path: str | Path, key_path: str | Path) -> Path:
    """Sign ``path``'s bytes with the private key at ``key_path``; write and return ``<path>.sig``."""
    key = load_private(key_path)
    target = signature_path(path)
    target.write_bytes(key.sign(Path(path).read_bytes()))
    return target


def check(path: str | Path, public_key_path: str | Path) -> str:
    """Check ``<path>.sig`` against ``path``'s bytes and the public key; returns the key's fingerprint.

    Raises:
        ConfigError: the public key cannot be read.
        IntegrityError: the signature file is missing or malformed, or the signature does not verify
            (the file was changed after signing, or signed with another key).
    """
    public = load_public(public_key_path)
    sig_path = signature_path(path)
    try:
        signature = sig_path.read_bytes()
    except FileNotFoundError as exc:
        raise IntegrityError(f"{sig_path}: signature file not found; {path} is unsigned") from exc
    if len(signature) != SIGNATURE_BYTES:
        raise IntegrityError(
            f"{sig_path}: expected a raw {SIGNATURE_BYTES}-byte {ALGORITHM} signature, found {len(signature)} bytes"
        )
    try:
        public.verify(signature, Path(path).read_bytes())
    except InvalidSignature as exc:
        raise IntegrityError(
            f"{sig_path}: the signature does not verify with the public key {public_key_path} "
            f"(fingerprint {fingerprint(public)}): {Path(path).name} was changed after signing, or signed "
            "with another key"
        ) from exc
    return fingerprint(public)
