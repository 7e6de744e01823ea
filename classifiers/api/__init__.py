"""The classifiers API, under /api/v1/classifiers/."""
