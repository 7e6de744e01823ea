"""Inference: jobs, the model runtime layer, the pipeline and its tasks."""
