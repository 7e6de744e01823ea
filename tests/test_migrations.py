"""The models and the migrations agree: a model change without its migration fails the suite (and CI)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_model_change_has_its_migration(capsys):
    try:
        call_command("makemigrations", "--check", "--dry-run")
    except SystemExit:
        pytest.fail(f"model changes without a migration (manage.py makemigrations):\n{capsys.readouterr().out}")
    assert "No changes detected" in capsys.readouterr().out
