"""Risk service: the only approver of orders."""
