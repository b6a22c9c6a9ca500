"""Ticket-system export parsers: one module per system, each turning an export into ticket snapshots."""
