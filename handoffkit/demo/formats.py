"""Writers for the real file formats the demo (and the benchmarks) feed through the real pipeline:
SARIF 2.1.0, Nessus v2 XML, OWASP ZAP JSON, Trivy JSON, the CISA KEV catalog, and the Jira CSV,
GitHub REST and ServiceNow Table API ticket exports. Each takes plain dicts and returns bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape, quoteattr


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------------------------ scanners


def sarif(runs: Iterable[dict[str, Any]]) -> bytes:
    """runs: ``{"tool", "version", "repo", "results": [{"rule", "title", "level", "score", "cwe", "message",
    "uri", "line", "fingerprint"}]}``."""
    out = []
    for run in runs:
        rules: dict[str, dict[str, Any]] = {}
        results = []
        for r in run["results"]:
            rules.setdefault(
                r["rule"],
                {
                    "id": r["rule"],
                    "name": r["rule"].rsplit(".", 1)[-1],
                    "shortDescription": {"text": r["title"]},
                    "defaultConfiguration": {"level": r["level"]},
                    "helpUri": f"https://rules.example.invalid/{r['rule']}",
                    "properties": {
                        "security-severity": str(r["score"]),
                        "tags": ["security", r["cwe"].lower().replace("cwe-", "external/cwe/cwe-")],
                    },
                },
            )
            results.append(
                {
                    "ruleId": r["rule"],
                    "level": r["level"],
                    "message": {"text": r["message"]},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": r["uri"]},
                                "region": {"startLine": r["line"]},
                            }
                        }
                    ],
                    "partialFingerprints": {"primaryLocationLineHash": r["fingerprint"]},
                }
            )
        out.append(
            {
                "tool": {"driver": {"name": run["tool"], "version": run["version"], "rules": list(rules.values())}},
                "versionControlProvenance": [{"repositoryUri": run["repo"]}],
                "invocations": [{"executionSuccessful": True, "startTimeUtc": run.get("started")}],
                "results": results,
            }
        )
    return _json({"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": out})


def nessus(hosts: Iterable[dict[str, Any]], scan_name: str) -> bytes:
    """hosts: ``{"name", "ip", "items": [{"port", "protocol", "svc", "severity", "plugin", "name", "family",
    "cves", "vector", "score", "output", "description", "solution"}]}``."""
    parts = ['<?xml version="1.0" ?>', "<NessusClientData_v2>", f"<Report name={quoteattr(scan_name)}>"]
    for host in hosts:
        parts.append(
            f"<ReportHost name={quoteattr(host['name'])}><HostProperties>"
            f'<tag name="host-ip">{escape(host["ip"])}</tag>'
            f'<tag name="host-fqdn">{escape(host["name"])}</tag></HostProperties>'
        )
        for it in host["items"]:
            children = [
                f"<description>{escape(it['description'])}</description>",
                f"<solution>{escape(it['solution'])}</solution>",
                f"<plugin_output>{escape(it['output'])}</plugin_output>",
                f"<risk_factor>{escape(it.get('risk', 'Medium'))}</risk_factor>",
            ]
            children += [f"<cve>{escape(c)}</cve>" for c in it["cves"]]
            if it.get("vector"):
                children += [
                    f"<cvss3_vector>{escape(it['vector'])}</cvss3_vector>",
                    f"<cvss3_base_score>{it['score']}</cvss3_base_score>",
                ]
            parts.append(
                f'<ReportItem port="{it["port"]}" svc_name={quoteattr(it["svc"])} '
                f'protocol="{it["protocol"]}" severity="{it["severity"]}" pluginID="{it["plugin"]}" '
                f"pluginName={quoteattr(it['name'])} pluginFamily={quoteattr(it['family'])}>"
                + "".join(children)
                + "</ReportItem>"
            )
        parts.append("</ReportHost>")
    parts += ["</Report>", "</NessusClientData_v2>"]
    return "\n".join(parts).encode("utf-8")


def zap(sites: Iterable[dict[str, Any]], generated: str) -> bytes:
    """sites: ``{"origin", "alerts": [{"plugin", "name", "risk", "cwe", "wasc", "desc", "solution",
    "instances": [{"uri", "method", "param", "evidence"}]}]}``."""
    out = []
    for site in sites:
        scheme, rest = site["origin"].split("://", 1)
        host, _, port = rest.partition(":")
        port = port or ("443" if scheme == "https" else "80")
        alerts = [
            {
                "pluginid": str(a["plugin"]),
                "alertRef": str(a["plugin"]),
                "alert": a["name"],
                "name": a["name"],
                "riskcode": str(a["risk"]),
                "confidence": "2",
                "riskdesc": ["Informational", "Low", "Medium", "High"][a["risk"]] + " (Medium)",
                "desc": f"<p>{a['desc']}</p>",
                "instances": a["instances"],
                "count": str(len(a["instances"])),
                "solution": f"<p>{a['solution']}</p>",
                "reference": "",
                "cweid": str(a["cwe"]),
                "wascid": str(a["wasc"]),
                "sourceid": "3",
            }
            for a in site["alerts"]
        ]
        out.append(
            {
                "@name": site["origin"],
                "@host": host,
                "@port": port,
                "@ssl": str(scheme == "https").lower(),
                "alerts": alerts,
            }
        )
    return _json({"@programName": "ZAP", "@version": "2.15.0", "@generated": generated, "site": out})


def trivy(image: str, vulns: Iterable[dict[str, Any]], created: str) -> bytes:
    """vulns: ``{"cve", "pkg", "installed", "fixed", "severity", "title", "cwe", "vector", "score"}``."""
    items = [
        {
            "VulnerabilityID": v["cve"],
            "PkgName": v["pkg"],
            "InstalledVersion": v["installed"],
            "FixedVersion": v["fixed"],
            "Severity": v["severity"].upper(),
            "Title": v["title"],
            "Description": f"{v['title']} in {v['pkg']}.",
            "CweIDs": [v["cwe"]],
            "CVSS": {"nvd": {"V3Vector": v["vector"], "V3Score": v["score"]}},
            "References": [f"https://nvd.nist.gov/vuln/detail/{v['cve']}"],
        }
        for v in vulns
    ]
    return _json(
        {
            "SchemaVersion": 2,
            "CreatedAt": created,
            "ArtifactName": image,
            "ArtifactType": "container_image",
            "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
            "Results": [
                {"Target": f"{image} (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": items}
            ],
        }
    )


def kev_catalog(entries: Iterable[dict[str, Any]], version: str, released: str) -> bytes:
    """entries: ``{"cve", "vendor", "product", "name", "added", "due"}`` (a catalog in CISA's published layout)."""
    vulns = [
        {
            "cveID": e["cve"],
            "vendorProject": e["vendor"],
            "product": e["product"],
            "vulnerabilityName": e["name"],
            "dateAdded": e["added"],
            "shortDescription": f"{e['name']} (demo entry).",
            "requiredAction": "Apply updates per vendor instructions.",
            "dueDate": e["due"],
            "knownRansomwareCampaignUse": "Unknown",
            "notes": "",
            "cwes": [],
        }
        for e in entries
    ]
    return _json(
        {
            "title": "CISA Catalog of Known Exploited Vulnerabilities",
            "catalogVersion": version,
            "dateReleased": released,
            "count": len(vulns),
            "vulnerabilities": vulns,
        }
    )


# ------------------------------------------------------------------------------------------- tickets


JIRA_COLUMNS = [
    "Summary",
    "Issue key",
    "Issue id",
    "Issue Type",
    "Status",
    "Status Category",
    "Priority",
    "Resolution",
    "Assignee",
    "Created",
    "Updated",
    "Labels",
    "Labels",
    "Labels",
    "Description",
    "Custom field (Finding ID)",
]


def jira_csv(tickets: Iterable[dict[str, Any]]) -> bytes:
    """tickets: ``{"key", "id", "title", "status", "category", "priority", "resolution", "assignee", "created",
    "updated", "labels", "description", "finding_field"}`` — Jira's CSV export layout (BOM, repeated Labels)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(JIRA_COLUMNS)
    for t in tickets:
        labels = [*t["labels"], "", "", ""][:3]
        writer.writerow(
            [
                t["title"],
                t["key"],
                t["id"],
                "Bug",
                t["status"],
                t["category"],
                t["priority"],
                t["resolution"] or "",
                t["assignee"] or "",
                t["created"],
                t["updated"],
                *labels,
                t["description"],
                t["finding_field"] or "",
            ]
        )
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def github_issues(tickets: Iterable[dict[str, Any]]) -> bytes:
    """A REST ``GET /repos/{owner}/{repo}/issues?state=all`` page; keys are ``owner/repo#number``."""
    items = []
    for t in tickets:
        repo, number = t["key"].rsplit("#", 1)
        closed = t["category"] == "done"
        items.append(
            {
                "url": f"https://api.github.com/repos/{repo}/issues/{number}",
                "repository_url": f"https://api.github.com/repos/{repo}",
                "html_url": f"https://github.com/{repo}/issues/{number}",
                "id": 9_000_000 + int(number),
                "number": int(number),
                "title": t["title"],
                "state": "closed" if closed else "open",
                "state_reason": "completed" if closed else None,
                "labels": [{"name": name} for name in t["labels"]],
                "assignee": {"login": t["assignee"]} if t["assignee"] else None,
                "assignees": [{"login": t["assignee"]}] if t["assignee"] else [],
                "created_at": t["created"],
                "updated_at": t["updated"],
                "closed_at": t["updated"] if closed else None,
                "body": t["description"],
            }
        )
    return _json(items)


_SN_STATE = {"todo": "1", "in_progress": "2", "done": "6"}


def servicenow(tickets: Iterable[dict[str, Any]]) -> bytes:
    """A Table API ``GET /api/now/table/incident`` body."""
    return _json(
        {
            "result": [
                {
                    "number": t["key"],
                    "sys_id": hashlib.md5(t["key"].encode()).hexdigest(),
                    "short_description": t["title"],
                    "description": t["description"],
                    "state": _SN_STATE[t["category"]],
                    "priority": t["priority"],
                    "assigned_to": t["assignee"] or "",
                    "u_finding_id": t["finding_field"] or "",
                    "close_code": "Solved (Permanently)" if t["category"] == "done" else "",
                    "sys_created_on": t["created"],
                    "sys_updated_on": t["updated"],
                }
                for t in tickets
            ]
        }
    )
