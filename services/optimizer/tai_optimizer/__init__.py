"""Research engines: event-driven and vectorised backtesters, reports, the backtest command."""
