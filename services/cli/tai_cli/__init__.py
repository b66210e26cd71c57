"""The trading-ai command: embedded run, single services, contracts, keys and users."""
