"""Inference from run directories: the Predictor, batch export, HTML reports, and (with the
serve extra) the HTTP service in ``recdiff.serving.service``."""
