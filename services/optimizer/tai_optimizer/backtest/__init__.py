"""Backtesting: the live strategy, risk and paper-broker objects wired in a loop over bars."""
