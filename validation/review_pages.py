"""The review pages: one detection at a time, by ear, and the calibration view."""

urlpatterns: list = []
