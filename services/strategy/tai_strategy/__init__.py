"""Strategy service: pure strategies turning bars and predictions into order requests."""
