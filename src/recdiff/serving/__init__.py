"""Inference from run directories: the Predictor (and, with the serve extra, HTTP)."""
