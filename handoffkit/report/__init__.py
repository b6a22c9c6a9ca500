"""What people read: views, facts, metrics, the checklist, charts and the rendered evidence pack."""
