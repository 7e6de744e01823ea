"""Fixtures shared by every test folder."""

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The real field recordings every test folder reads (tests/data/README.md names their sources and licences).
SHARED_DATA = PROJECT_ROOT / "tests" / "data"
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
SAVED = pytest.StashKey[list]()


@pytest.fixture(autouse=True)
def spectrogram_cache(tmp_path, settings) -> Path:
    """Spectrograms drawn by a test go to its own folder, never to var/cache."""
    settings.SPECTROGRAM_CACHE_DIR = tmp_path / "spectrograms"
    return settings.SPECTROGRAM_CACHE_DIR


@pytest.fixture
def save_screenshot(request):
    """save_screenshot(page, name): a full-page PNG under test-artifacts/screenshots/, listed at the end of the run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = request.config.stash.setdefault(SAVED, [])

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
        return path

    return save


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Name the screenshots' folder in the summary, whatever -s says: CI prints this line."""
    saved = config.stash.get(SAVED, [])
    if saved:
        terminalreporter.write_line(f"SCREENSHOTS: {SCREENSHOTS}")
        for path in saved:
            terminalreporter.write_line(f"  {path}")


@pytest.fixture
def shared_data() -> Path:
    """The real field recordings in tests/data."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: tests read real recordings from tests/data"
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


def import_field_recordings(audio_root: Path, names: list[str], *, dataset: str = "Field season", **site) -> object:
    """Copy recordings from tests/data into AUDIO_ROOT and import them; returns the dataset."""
    import shutil

    from echoroo.importing import import_recordings

    folder = audio_root / dataset.replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SHARED_DATA / name, folder / name)
    report = import_recordings([folder], dataset=dataset, **site)
    assert not report.failures, report.failures
    return report.dataset


@pytest.fixture
def field_dataset(db, audio_root):
    """A dataset of two real recordings (1min.wav, rugr_drum.wav) at a site in New York state."""
    return import_field_recordings(
        audio_root,
        ["1min.wav", "rugr_drum.wav"],
        site="North transect",
        latitude=42.47,
        longitude=-76.45,
    )


@pytest.fixture
def field_recording(field_dataset):
    """1min.wav: one minute of a field recording with birds (32 kHz)."""
    return field_dataset.recordings.get(path__endswith="1min.wav")
