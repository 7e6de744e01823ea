"""API routes of the validation app, under /api/v1/: verdicts, calibration, threshold sets."""

urlpatterns: list = []
