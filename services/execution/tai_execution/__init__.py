"""Execution service: verified approvals, order state machine, brokers."""
