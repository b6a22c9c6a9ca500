"""Tickets, the downstream view: export parsers (one module per system), snapshots, links and payloads."""
