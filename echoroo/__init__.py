"""Echoroo ML: the Django project and the core domain app."""
