"""tai_store."""
