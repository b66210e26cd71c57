"""Run one service as its own process: infrastructure from the environment, until SIGTERM."""

from tai_runtime.runner import ServiceApp, migrate_once, run_service

__all__ = ["ServiceApp", "migrate_once", "run_service"]
