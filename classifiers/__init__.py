"""Custom classifiers: label clips, train a linear classifier on a model run's stored embeddings, apply it."""
