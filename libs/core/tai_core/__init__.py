"""Trading AI Secure shared core: clock, deterministic ids, settings and approval signing."""
