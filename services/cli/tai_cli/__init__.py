"""tai_cli."""
