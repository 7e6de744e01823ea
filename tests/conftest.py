"""Fixtures shared by every test folder."""

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real field recordings in ../shared/data."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: tests read real recordings from ../shared/data"
    return SHARED_DATA


@pytest.fixture
def audio_root(tmp_path, settings) -> Path:
    """A fresh AUDIO_ROOT for one test."""
    root = tmp_path / "audio"
    root.mkdir()
    settings.AUDIO_ROOT = root
    return root


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="ecologist", password="pw-ecologist-1")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="curator", password="pw-curator-1", is_staff=True)


@pytest.fixture
def admin_user_logged_in(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def api_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client
