"""Trading AI Secure quant maths: indicators, metrics, risk maths (pure numpy/pandas)."""
