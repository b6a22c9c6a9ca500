"""The record: its vocabulary, schema, store, the activity log and the state it holds."""
