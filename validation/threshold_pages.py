"""The threshold-set pages: list, create (from calibrations, by hand, from CSV), export."""

urlpatterns: list = []
