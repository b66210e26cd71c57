"""Inference service and ML pipeline: features in, calibrated predictions out."""
