"""Benchmark: ``sync tickets`` of 10,000 Jira issues from a local server in pages of 100, against a file
ingest of the same issues.

The server (pytest-httpserver on 127.0.0.1) answers Jira Cloud's ``/rest/api/3/search/jql`` with pages
chained by ``nextPageToken``; its issues are the shared corpus's real Jira issue bodies
(``jira/jira_issue_*.json``) cycled and re-keyed SEC-1…SEC-N. Each side imports into a fresh SQLite store
of one engagement (the project's policy): the sync through the API (requests, parsing every page,
hashes, one snapshot), the file ingest from one search-response file holding the same issues. Prints
wall time, requests and the ratio sync ÷ file ingest; the second sync of the same issues (a snapshot
diff with nothing new) is timed too.

    .venv/bin/python bench/sync.py [--issues 10000] [--page 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from handoffkit.record import engagements
from handoffkit.record.store import Store
from handoffkit.tickets import snapshots
from handoffkit.tickets.connection import Settings
from handoffkit.tickets.sync import sync_tickets

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "params" / "policy.yaml"
CORPUS = Path(os.environ.get("HANDOFFKIT_CORPUS", ROOT.parent / "shared" / "corpus"))
SAMPLES = ("NTEST-3187", "NTEST-3079_epic", "NTEST-3104_comments", "NTEST-3077_done", "NTEST-3169_labels")
ACTOR = "bench: Ana Silva"


def issues(n: int, base: str) -> list[dict]:
    bodies = [json.loads((CORPUS / f"jira/jira_issue_{s}.json").read_bytes()) for s in SAMPLES]
    out = []
    for i in range(1, n + 1):
        doc = copy.deepcopy(bodies[i % len(bodies)])
        doc["key"], doc["id"] = f"SEC-{i}", str(100_000 + i)
        doc["self"] = f"{base}/rest/api/2/issue/{doc['id']}"
        out.append(doc)
    return out


def serve(server: HTTPServer, all_issues: list[dict], size: int) -> list[bytes]:
    chunks = [all_issues[i : i + size] for i in range(0, len(all_issues), size)]
    pages = []
    for i, chunk in enumerate(chunks):
        body = {"issues": chunk, "isLast": i == len(chunks) - 1}
        if i < len(chunks) - 1:
            body["nextPageToken"] = f"t{i + 1}"
        pages.append(json.dumps(body).encode())

    def answer(request: Request) -> Response:
        token = request.args.get("nextPageToken")
        return Response(pages[int(token[1:]) if token else 0], content_type="application/json")

    server.expect_request("/rest/api/3/search/jql").respond_with_handler(answer)
    return pages


def fresh(workdir: Path, name: str) -> Store:
    store = Store(f"sqlite:///{workdir / name}")
    engagements.init(store, "BENCH", POLICY, actor=ACTOR)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["HANDOFFKIT_JIRA_TOKEN"] = "bench-token"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per page otherwise
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        base = server.url_for("").rstrip("/")
        all_issues = issues(args.issues, base)
        serve(server, all_issues, args.page)
        settings = Settings(url=base, page_size=args.page)
        syncs, again, files, requests = [], [], [], 0
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            export = workdir / "jira-export.json"
            export.write_text(json.dumps({"issues": all_issues}))
            for run in range(args.runs):  # alternate the two sides so neither always runs on a warmer machine
                store = fresh(workdir, f"sync{run}.db")
                start = time.perf_counter()
                result = sync_tickets(store, "BENCH", "jira", settings, actor=ACTOR)
                syncs.append(time.perf_counter() - start)
                requests = result["requests"]
                assert result["tickets"] == args.issues, result
                start = time.perf_counter()
                sync_tickets(store, "BENCH", "jira", settings, actor=ACTOR)
                again.append(time.perf_counter() - start)
                store.dispose()

                store = fresh(workdir, f"file{run}.db")
                start = time.perf_counter()
                [done] = snapshots.ingest_tickets(store, "BENCH", [export], system="jira", actor=ACTOR)
                files.append(time.perf_counter() - start)
                assert done.status == "ok" and done.tickets == args.issues, done.error
                store.dispose()
                print(f"run {run + 1}: sync {syncs[-1]:.2f} s, again {again[-1]:.2f} s, file {files[-1]:.2f} s")
    finally:
        server.stop()
    s, a, f = statistics.median(syncs), statistics.median(again), statistics.median(files)
    print(f"{args.issues} issues in pages of {args.page}: {requests} requests")
    print(f"sync (median of {args.runs}): {s:.2f} s; second sync {a:.2f} s; file ingest {f:.2f} s; ratio {s / f:.2f}x")


if __name__ == "__main__":
    main()
