"""jsonschema as handoffkit imports it: without the optional ``iri`` format grammar.

jsonschema registers ``iri`` / ``iri-reference`` format checkers when ``rfc3987_syntax`` is installed
(jupyter-events asks for it), and importing that package builds its grammar, a start-up cost in every
process that imports jsonschema — the report process (through nbformat), each notebook kernel (through
Altair). No schema handoffkit validates against uses those formats: not the KEV catalog's, the ticket
payloads', nbformat's or Vega-Lite's; an unknown format is simply not checked. Modules that import
jsonschema, or a library that does, import this module first. The block lasts only for this import:
the process can still import ``rfc3987_syntax`` itself afterwards.
"""

from __future__ import annotations

import sys

_blocked = "rfc3987_syntax" not in sys.modules
if _blocked:
    sys.modules["rfc3987_syntax"] = None  # makes `import rfc3987_syntax` raise ImportError
try:
    import jsonschema
finally:
    if _blocked and sys.modules.get("rfc3987_syntax", False) is None:
        del sys.modules["rfc3987_syntax"]

__all__ = ["jsonschema"]
