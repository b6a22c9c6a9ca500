"""Evidence files: what ``verify --kind retest --evidence FILE`` may read, and how it is kept.

A retest's evidence may be a file — a report, a screenshot, a tool's output. The record keeps what it
reads for good (and hands it to auditors), so it reads only from one place the operator chose: the
*evidence directory* (``--evidence-dir`` or ``HANDOFFKIT_EVIDENCE_DIR``). A file is read when, after every
symlink is followed, it lies inside that directory, is a regular file (not a device, pipe or directory)
and is no larger than the cap (``HANDOFFKIT_MAX_EVIDENCE_BYTES``, 50 MiB by default). It is stored by its
SHA-256 and its name relative to the directory. A value naming an existing path anywhere else — a
symlink out of the directory, ``/etc/shadow``, a device — is refused without being read; a value naming
nothing on disk is a text describing the retest.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from handoffkit.errors import InputError, RefusedError
from handoffkit.record.inputs import read_bytes

DEFAULT_MAX_BYTES = int(os.environ.get("HANDOFFKIT_MAX_EVIDENCE_BYTES", str(50 * 1024**2)))
ENV_DIR = "HANDOFFKIT_EVIDENCE_DIR"


@dataclass(frozen=True)
class EvidenceFile:
    """A file read from the evidence directory: its name there, its bytes and its media type."""

    name: str
    content: bytes
    media_type: str


@dataclass(frozen=True)
class EvidenceFiles:
    """The evidence directory (``None``: none configured, so no file is read) and the size cap."""

    directory: Path | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def configured(cls, directory: str | Path | None = None, max_bytes: int | None = None) -> EvidenceFiles:
        """The given directory, else ``HANDOFFKIT_EVIDENCE_DIR``, else none."""
        chosen = directory or os.environ.get(ENV_DIR) or None
        return cls(Path(chosen) if chosen else None, DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)

    def read(self, given: str) -> EvidenceFile | None:
        """The evidence file ``given`` names, read; ``None`` when it names nothing on disk (a text).

        Raises:
            RefusedError: it names a path outside the directory, not a regular file, or one over the cap.
        """
        named = self._named(given)
        if named is None:
            return None
        root = self._root(given)
        real = named.resolve()
        if not real.is_relative_to(root):
            raise RefusedError(
                f"--evidence {given!r} is outside the evidence directory {root} (symlinks are followed); "
                "copy the file into it"
            )
        content = self._read_regular(real, given)
        name = real.relative_to(root).as_posix()
        return EvidenceFile(name, content, mimetypes.guess_type(name)[0] or "application/octet-stream")

    def _named(self, given: str) -> Path | None:
        path = Path(given).expanduser()
        candidates = [path] if path.is_absolute() else [path, *([self.directory / path] if self.directory else [])]
        return next((c for c in candidates if os.path.lexists(c)), None)

    def _root(self, given: str) -> Path:
        if self.directory is None:
            raise RefusedError(
                f"--evidence {given!r} names a file, and evidence files are read only from the evidence "
                f"directory: give --evidence-dir (or set {ENV_DIR})"
            )
        try:
            root = self.directory.resolve(strict=True)
        except OSError as exc:
            raise RefusedError(f"the evidence directory {self.directory} does not exist") from exc
        if not root.is_dir():
            raise RefusedError(f"the evidence directory {self.directory} is not a directory")
        return root

    def _read_regular(self, real: Path, given: str) -> bytes:
        try:
            return read_bytes(real, self.max_bytes, follow_symlinks=False)
        except InputError as exc:  # the same checks as every input file; said as a refused evidence file
            if exc.reason == "over the size cap":
                raise RefusedError(self._too_big(given)) from exc
            if exc.reason == "not a regular file":
                raise RefusedError(f"--evidence {given!r} is not a regular file (a device, pipe or directory)") from exc
            cause = exc.__cause__
            why = getattr(cause, "strerror", None) or cause or exc
            raise RefusedError(f"--evidence {given!r}: cannot read ({why})") from exc

    def _too_big(self, given: str) -> str:
        return (
            f"--evidence {given!r} is over the {self.max_bytes}-byte cap for evidence files "
            "(raise HANDOFFKIT_MAX_EVIDENCE_BYTES to accept it)"
        )
