"""The parser contract and the one registry of scanner formats.

A format is one module that satisfies :class:`Parser` and one entry in :data:`PARSERS`. Detection
(:mod:`handoffkit.ingest.detect`) loads the bytes once into the container the module names in
``CONTAINERS`` and asks each parser of that container, in registry order, whether it recognises the
document; the first that does parses it. The order therefore puts the most specific shapes first:
a parser whose ``sniff`` accepts a broad shape (DefectDojo's generic ``findings`` array) comes after
the formats whose documents would also match it (Amazon Inspector's ``findings``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from handoffkit.ingest import (
    asff,
    burp,
    checkmarx_one,
    defectdojo,
    generic,
    github_alerts,
    gitlab,
    grype,
    inspector2,
    nessus,
    nexpose,
    npm_audit,
    nuclei,
    openvas,
    osv_scanner,
    pip_audit,
    qualys,
    qualys_was,
    sarif,
    semgrep,
    snyk,
    sonarqube,
    tenable_csv,
    trivy,
    veracode,
    wiz,
    zap,
)
from handoffkit.record.model import ParseResult


@runtime_checkable
class Parser(Protocol):
    """What one format module provides.

    ``FORMAT`` is the name users pass as ``--format``; ``CONTAINERS`` the loaded shapes it reads
    (``"json"``: the value ``json.loads`` gives, or a list of objects for JSON Lines; ``"xml"``: the
    root :class:`~xml.etree.ElementTree.Element`; ``"csv"``: a :class:`~handoffkit.record.inputs.CsvTable`).
    A module may also name a ``DOCTYPE`` whose internal subset detection accepts (Burp's), and a
    ``DTD_SYSTEM_ID`` pattern of the vendor's external DTD addresses that DOCTYPE may name (Qualys's).

    ``sniff(doc)`` says from the content alone whether the document is this format; it never raises.
    ``parse(doc, source)`` returns every record of the document as a :class:`ParseResult` (one
    :class:`~handoffkit.record.model.NormalisedFinding` per item, the format's record rule being in its
    docstring and in docs/formats.md), and raises :class:`~handoffkit.errors.InputError` naming
    ``source`` and the place for an item it cannot read.
    """

    FORMAT: str
    CONTAINERS: tuple[str, ...]

    def sniff(self, doc: Any) -> bool: ...

    def parse(self, doc: Any, source: str) -> ParseResult: ...


_MODULES: tuple[Parser, ...] = (
    sarif,
    nessus,
    tenable_csv,
    qualys,
    qualys_was,
    nexpose,
    openvas,
    grype,
    snyk,
    gitlab,
    github_alerts,
    osv_scanner,
    npm_audit,
    pip_audit,
    asff,
    inspector2,
    wiz,
    nuclei,
    sonarqube,
    veracode,
    checkmarx_one,
    zap,
    trivy,
    semgrep,
    burp,
    generic,
    defectdojo,
)

PARSERS: dict[str, Parser] = {m.FORMAT: m for m in _MODULES}
"""Format name → parser module, in sniffing order (the most specific shapes first)."""

FORMATS: tuple[str, ...] = tuple(PARSERS)
