"""`manage.py import_recordings`: real files under AUDIO_ROOT become Recordings, once."""

import hashlib
import os
import shutil
from datetime import UTC, datetime
from io import StringIO
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile
from django.core.management import CommandError, call_command

from echoroo import importing
from echoroo.models import Dataset, Recording, Site
from tests.audio_files import flac_with_total_samples, guano, info_comment, wav_with_chunk

pytestmark = pytest.mark.django_db

# name: (seconds, sample rate, channels), from tests/data/README.md
GOOD = {
    "1min.wav": (60.0, 32000, 1),
    "rugr_drum.wav": (10.0, 32000, 1),
    "metadata.wav": (14.9694375, 32000, 1),
    "great_plains_toad.wav": (44.571, 44100, 1),
    "veryshort.wav": (0.142, 44100, 1),
}


def run(*paths, dataset="Field season 2026", **options) -> str:
    """Run the command; return its stdout (stderr must stay free of anything but a progress bar)."""
    stdout, stderr = StringIO(), StringIO()
    call_command("import_recordings", *map(str, paths), dataset=dataset, stdout=stdout, stderr=stderr, **options)
    assert stderr.getvalue() == ""
    return stdout.getvalue()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_audio(path, *, seconds=1.0, sample_rate=48000, channels=1, seed=0, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * sample_rate), channels))
    soundfile.write(path, noise.astype("float32"), sample_rate, **options)
    return path


@pytest.fixture
def site1(audio_root, shared_data):
    """The shared recordings, empty_2c.wav included, copied to AUDIO_ROOT/site1."""
    folder = audio_root / "site1"
    folder.mkdir()
    for name in [*GOOD, "empty_2c.wav"]:
        shutil.copyfile(shared_data / name, folder / name)
    return folder


def test_real_recordings_import_with_their_header_and_sha256(site1):
    output = run(site1)

    assert output.splitlines()[0] == "Imported 5, already present 0, failed 1"
    recordings = {r.path: r for r in Recording.objects.all()}
    assert set(recordings) == {f"site1/{name}" for name in GOOD}
    for name, (seconds, sample_rate, channels) in GOOD.items():
        recording = recordings[f"site1/{name}"]
        assert recording.duration == pytest.approx(seconds, abs=1e-3)
        assert recording.samplerate == sample_rate
        assert recording.channels == channels
        assert recording.sha256 == sha256(site1 / name)
        assert recording.dataset.name == "Field season 2026"
        assert recording.site is None
        assert recording.absolute_path == site1 / name


def test_a_file_without_samples_is_reported_and_the_rest_import(site1):
    output = run(site1)

    assert "site1/empty_2c.wav: no audio samples" in output.splitlines()
    assert not Recording.objects.filter(path__endswith="empty_2c.wav").exists()
    assert Recording.objects.count() == 5


def test_corrupt_empty_text_and_unreadable_files_are_reported_with_their_reason(audio_root, shared_data):
    folder = audio_root / "card"
    folder.mkdir()
    shutil.copyfile(shared_data / "rugr_drum.wav", folder / "good.wav")
    (folder / "corrupt.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    (folder / "zero.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("field notes, not audio\n")
    (folder / "gone.wav").symlink_to(folder / "deleted.wav")

    lines = run(folder).splitlines()

    assert lines[0] == "Imported 1, already present 0, failed 4"
    # libsndfile's own reason depends on what the random bytes look like (an MP3 frame sync, say).
    assert lines[1].startswith("card/corrupt.wav: not a readable audio file (") and lines[1].endswith(")")
    assert lines[2:] == [
        "card/gone.wav: cannot read (No such file or directory)",
        "card/notes.wav: not a readable audio file (Format not recognised)",
        "card/zero.wav: empty file",
    ]
    assert list(Recording.objects.values_list("path", flat=True)) == ["card/good.wav"]


def test_a_pipe_named_like_audio_is_reported_without_being_opened(audio_root, shared_data):
    shutil.copyfile(shared_data / "rugr_drum.wav", audio_root / "good.wav")
    os.mkfifo(audio_root / "pipe.wav")  # opening it would wait for a writer for ever

    assert run(audio_root).splitlines() == [
        "Imported 1, already present 0, failed 1",
        "pipe.wav: cannot read (not a regular file)",
    ]


def test_a_link_inside_a_folder_that_leads_outside_audio_root_is_reported_and_skipped(site1, shared_data):
    (site1 / "elsewhere.wav").symlink_to(shared_data / "rugr_drum.wav")
    (site1 / "elsewhere_folder").symlink_to(shared_data)

    lines = run(site1).splitlines()

    assert lines[0] == "Imported 5, already present 0, failed 3"
    assert f"site1/elsewhere.wav: outside AUDIO_ROOT (links to {shared_data / 'rugr_drum.wav'})" in lines
    assert f"site1/elsewhere_folder: outside AUDIO_ROOT (links to {shared_data})" in lines
    assert not Recording.objects.filter(path__contains="elsewhere").exists()


@pytest.mark.parametrize("outside", ["folder", "file", "link"])
def test_a_path_outside_audio_root_is_refused_and_nothing_is_written(audio_root, shared_data, outside):
    link = audio_root / "linked.wav"
    link.symlink_to(shared_data / "rugr_drum.wav")
    path = {"folder": shared_data, "file": shared_data / "rugr_drum.wav", "link": link}[outside]

    with pytest.raises(CommandError, match="is outside AUDIO_ROOT"):
        run(path)
    assert not Dataset.objects.exists()


def test_a_missing_path_is_refused(audio_root):
    with pytest.raises(CommandError, match="does not exist"):
        run(audio_root / "no-such-folder")


def test_a_folder_without_audio_is_refused(audio_root):
    (audio_root / "notes.txt").write_text("nothing to hear\n")
    with pytest.raises(CommandError, match="no audio files"):
        run(audio_root)
    assert not Dataset.objects.exists()


def test_rerunning_adds_nothing_and_reports_all_as_already_present(site1):
    run(site1)
    before = list(Recording.objects.values_list("uuid", "path", "sha256"))

    lines = run(site1).splitlines()

    assert lines == ["Imported 0, already present 5, failed 1", "site1/empty_2c.wav: no audio samples"]
    assert list(Recording.objects.values_list("uuid", "path", "sha256")) == before


def test_rerunning_over_a_larger_tree_imports_only_the_new_files(site1, audio_root):
    run(site1)
    write_audio(audio_root / "site2" / "new.wav")

    assert run(audio_root).splitlines()[0] == "Imported 1, already present 5, failed 1"
    assert Recording.objects.count() == 6


def test_verify_reports_a_file_that_changed_on_disk_and_keeps_the_recording(site1, shared_data):
    run(site1)
    stored = Recording.objects.get(path="site1/rugr_drum.wav")
    shutil.copyfile(shared_data / "veryshort.wav", site1 / "rugr_drum.wav")

    assert run(site1).splitlines()[0] == "Imported 0, already present 5, failed 1"
    lines = run(site1, verify=True).splitlines()

    assert lines[0] == "Imported 0, already present 4, failed 2, missing 0"
    assert (
        "site1/rugr_drum.wav: changed on disk since it was imported (sha256 differs); the recording was not updated"
        in lines
    )
    assert Recording.objects.get(path="site1/rugr_drum.wav").sha256 == stored.sha256


def test_verify_lists_the_recordings_whose_file_is_gone(site1, audio_root, shared_data):
    run(site1)
    (site1 / "rugr_drum.wav").unlink()
    (site1 / "veryshort.wav").unlink()
    (site1 / "veryshort.wav").mkdir()  # a folder where the file was is no recording either

    assert run(site1).splitlines()[0] == "Imported 0, already present 3, failed 1"  # without --verify: not looked for
    lines = run(site1, verify=True).splitlines()

    assert lines == [
        "Imported 0, already present 3, failed 1, missing 2",
        "site1/empty_2c.wav: no audio samples",
        "site1/rugr_drum.wav: missing: imported, but the file is gone; restore it, or delete the recording",
        "site1/veryshort.wav: missing: imported, but the file is gone; restore it, or delete the recording",
    ]
    assert Recording.objects.count() == 5  # listed, not deleted


def test_verify_of_a_folder_that_is_gone_lists_its_recordings(site1, audio_root, shared_data):
    write_audio(audio_root / "site2" / "a.wav")
    run(audio_root)
    shutil.rmtree(site1)

    with pytest.raises(CommandError, match="site1 does not exist"):
        run(site1)
    lines = run(site1, audio_root / "site2", verify=True).splitlines()

    assert lines[0] == "Imported 0, already present 1, failed 0, missing 5"
    assert [line.split(":")[0] for line in lines[1:]] == [f"site1/{name}" for name in sorted(GOOD)]
    with pytest.raises(CommandError, match="does not exist"):  # a path that never held a recording is a typo
        run(audio_root / "site3", verify=True)


def test_verify_does_not_list_recordings_of_other_datasets_or_outside_the_paths(site1, audio_root):
    write_audio(audio_root / "site2" / "a.wav")
    run(site1)
    run(audio_root / "site2", dataset="Other")
    (audio_root / "site2" / "a.wav").unlink()
    write_audio(audio_root / "site2" / "b.wav", seed=1)

    assert run(site1, verify=True).splitlines()[0] == "Imported 0, already present 5, failed 1, missing 0"
    assert (
        run(audio_root / "site2", verify=True).splitlines()[0] == "Imported 1, already present 0, failed 0, missing 0"
    )


def test_flac_ogg_and_mp3_files_import(audio_root):
    write_audio(audio_root / "a.flac", seconds=2, sample_rate=48000, channels=2, seed=1)
    write_audio(audio_root / "b.ogg", seconds=3, sample_rate=32000, seed=2)
    write_audio(audio_root / "c.mp3", seconds=2, sample_rate=44100, seed=3)

    assert run(audio_root).splitlines() == ["Imported 3, already present 0, failed 0"]
    headers = {r.path: (r.duration, r.samplerate, r.channels) for r in Recording.objects.all()}
    assert headers["a.flac"] == (2.0, 48000, 2)
    assert headers["b.ogg"] == (3.0, 32000, 1)
    assert headers["c.mp3"][1:] == (44100, 1)
    assert headers["c.mp3"][0] == pytest.approx(2.0, abs=0.05)
    for recording in Recording.objects.all():
        assert recording.sha256 == sha256(audio_root / recording.path)


def test_extensions_are_matched_in_any_case_and_other_and_hidden_files_are_left_alone(audio_root):
    write_audio(audio_root / "20260401_053000.WAV")
    write_audio(audio_root / "b.Flac", seed=1)
    write_audio(audio_root / "._20260401_053000.WAV", seed=2)  # macOS metadata on an SD card
    write_audio(audio_root / ".trash" / "old.wav", seed=3)
    (audio_root / "CONFIG.TXT").write_text("AudioMoth config\n")

    assert run(audio_root).splitlines() == ["Imported 2, already present 0, failed 0"]
    assert sorted(Recording.objects.values_list("path", flat=True)) == ["20260401_053000.WAV", "b.Flac"]


def test_files_are_walked_in_name_order_through_nested_folders(audio_root):
    for name in ["b/2.wav", "a/z/1.wav", "a/0.wav", "c.wav"]:
        (audio_root / name).parent.mkdir(parents=True, exist_ok=True)
        (audio_root / name).write_bytes(b"")

    lines = run(audio_root).splitlines()

    assert [line.split(":")[0] for line in lines[1:]] == ["a/0.wav", "a/z/1.wav", "b/2.wav", "c.wav"]


def test_recorder_file_names_give_the_recording_time_in_utc_by_default(audio_root):
    write_audio(audio_root / "moth" / "20260401_053000.WAV")
    write_audio(audio_root / "meter" / "SMM01234_20260402_064500.wav", seed=1)
    write_audio(audio_root / "meter" / "S4A01234_20260403_200000_000.wav", seed=2)
    write_audio(audio_root / "other" / "dawn chorus.wav", seed=3)

    run(audio_root)

    times = dict(Recording.objects.values_list("path", "recorded_at"))
    assert times == {
        "moth/20260401_053000.WAV": datetime(2026, 4, 1, 5, 30, tzinfo=UTC),
        "meter/SMM01234_20260402_064500.wav": datetime(2026, 4, 2, 6, 45, tzinfo=UTC),
        "meter/S4A01234_20260403_200000_000.wav": datetime(2026, 4, 3, 20, 0, tzinfo=UTC),
        "other/dawn chorus.wav": None,
    }


def test_the_timezone_option_reads_file_name_times_as_the_recorders_local_time(audio_root):
    write_audio(audio_root / "SMM01234_20260401_053000.wav")
    write_audio(audio_root / "20260401_053000Z.wav", seed=1)

    run(audio_root, timezone="America/New_York")

    times = dict(Recording.objects.values_list("path", "recorded_at"))
    new_york = datetime(2026, 4, 1, 5, 30, tzinfo=ZoneInfo("America/New_York"))
    assert times["SMM01234_20260401_053000.wav"] == new_york
    assert times["SMM01234_20260401_053000.wav"] == datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
    assert times["20260401_053000Z.wav"] == datetime(2026, 4, 1, 5, 30, tzinfo=UTC)  # the name says UTC


def test_an_unknown_timezone_is_refused(audio_root):
    write_audio(audio_root / "a.wav")
    with pytest.raises(CommandError, match="unknown time zone 'Mars/Olympus'"):
        run(audio_root, timezone="Mars/Olympus")


def test_a_site_is_created_with_its_location_and_recordings_keep_none_of_their_own(site1):
    run(site1, site="North ridge", lat=45.5, lon=-122.25)

    site = Site.objects.get()
    assert (site.dataset.name, site.name) == ("Field season 2026", "North ridge")
    assert (site.latitude, site.longitude) == (45.5, -122.25)
    assert set(Recording.objects.values_list("site", "latitude", "longitude")) == {(site.pk, None, None)}


def test_a_site_without_a_location_gets_the_one_given(site1):
    dataset = Dataset.objects.create(name="Field season 2026")
    Site.objects.create(dataset=dataset, name="North ridge")

    run(site1, site="North ridge", lat=45.5, lon=-122.25)

    assert Site.objects.values_list("latitude", "longitude").get() == (45.5, -122.25)


def test_an_existing_site_is_used_as_it_is_when_no_location_is_given(site1):
    dataset = Dataset.objects.create(name="Field season 2026")
    site = Site.objects.create(dataset=dataset, name="North ridge", latitude=1.0, longitude=2.0)

    run(site1, site="North ridge")
    run(site1, site="North ridge", lat=1.0, lon=2.0)

    assert Site.objects.values_list("latitude", "longitude").get() == (1.0, 2.0)
    assert set(Recording.objects.values_list("site", flat=True)) == {site.pk}


def test_a_conflicting_location_for_an_existing_site_is_refused(site1):
    dataset = Dataset.objects.create(name="Field season 2026")
    Site.objects.create(dataset=dataset, name="North ridge", latitude=1.0, longitude=2.0)

    with pytest.raises(CommandError, match="is at latitude 1.0, longitude 2.0, not 1.0, 3.0"):
        run(site1, site="North ridge", lat=1.0, lon=3.0)
    assert not Recording.objects.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"site": "A", "lat": 45.0}, "both latitude and longitude"),
        ({"site": "A", "lon": 45.0}, "both latitude and longitude"),
        ({"lat": 45.0, "lon": 7.0}, "give the site's name"),
        ({"site": "A", "lat": 91.0, "lon": 7.0}, "latitude 91.0 is not between -90 and 90"),
        ({"site": "A", "lat": 45.0, "lon": -180.5}, "longitude -180.5 is not between -180 and 180"),
        ({"site": "A", "lat": float("nan"), "lon": 7.0}, "latitude nan is not between"),
        ({"site": " "}, "the site name is empty"),
    ],
)
def test_bad_site_arguments_are_refused_before_anything_is_written(site1, options, message):
    with pytest.raises(CommandError, match=message):
        run(site1, **options)
    assert not Dataset.objects.exists()


def test_relative_paths_are_resolved_against_the_working_directory(site1, audio_root, monkeypatch):
    monkeypatch.chdir(audio_root)
    run("site1/rugr_drum.wav", "./site1/../site1/1min.wav")

    assert sorted(Recording.objects.values_list("path", flat=True)) == ["site1/1min.wav", "site1/rugr_drum.wav"]


def test_a_file_reached_through_links_inside_audio_root_is_stored_once_under_its_real_path(site1, audio_root):
    (audio_root / "latest").symlink_to(site1)
    (audio_root / "drum.wav").symlink_to(site1 / "rugr_drum.wav")
    (site1 / "loop").symlink_to(audio_root)  # a link back up the tree is walked once

    lines = run(audio_root, site1 / "rugr_drum.wav").splitlines()

    assert lines[0] == "Imported 5, already present 0, failed 1"
    paths = list(Recording.objects.values_list("path", flat=True))
    assert sorted(paths) == sorted(f"site1/{name}" for name in GOOD)


def test_a_file_in_another_dataset_is_imported_again_into_this_one(site1):
    run(site1, dataset="Season A")
    assert run(site1, dataset="Season B").splitlines()[0] == "Imported 5, already present 0, failed 1"
    assert Recording.objects.filter(dataset__name="Season B").count() == 5


def test_imports_in_several_batches_mix_new_and_present_files(audio_root, monkeypatch):
    for index in range(7):
        write_audio(audio_root / f"{index:02}.wav", seconds=0.1, seed=index)
    run(audio_root / "01.wav", audio_root / "04.wav")
    (audio_root / "03.wav").write_bytes(b"")
    monkeypatch.setattr(importing, "BATCH_SIZE", 2)

    lines = run(audio_root).splitlines()

    assert lines == ["Imported 4, already present 2, failed 1", "03.wav: empty file"]
    assert Recording.objects.count() == 6


def test_the_number_of_queries_does_not_grow_with_the_number_of_files(audio_root, django_assert_max_num_queries):
    for index in range(40):
        write_audio(audio_root / f"{index:02}.wav", seconds=0.05, seed=index)

    with django_assert_max_num_queries(11):
        run(audio_root)
    with django_assert_max_num_queries(4):
        run(audio_root)
    assert Recording.objects.count() == 40


def test_hashing_reads_in_chunks_and_matches_hashlib(audio_root, monkeypatch):
    monkeypatch.setattr(importing, "HASH_CHUNK_BYTES", 1000)
    path = write_audio(audio_root / "a.wav", seconds=0.5)

    assert importing.inspect_audio_file(path).sha256 == sha256(path)


def test_the_progress_bar_writes_to_a_terminal_only(site1, monkeypatch):
    class Terminal(StringIO):
        def isatty(self):
            return True

    stdout, stderr = StringIO(), Terminal()
    call_command("import_recordings", str(site1), dataset="D", stdout=stdout, stderr=stderr)

    assert "Importing" in stderr.getvalue() and "6/6" in stderr.getvalue()
    assert stdout.getvalue().splitlines()[0] == "Imported 5, already present 0, failed 1"


def test_non_utf8_file_names_are_reported_not_fatal(audio_root, shared_data):
    name = os.fsdecode(b"caf\xe9.wav")
    shutil.copyfile(shared_data / "rugr_drum.wav", audio_root / name)
    shutil.copyfile(shared_data / "veryshort.wav", audio_root / "ok.wav")

    lines = run(audio_root).splitlines()

    assert lines == [
        "Imported 1, already present 0, failed 1",
        r"caf\udce9.wav: the file name is not valid UTF-8: rename the file",
    ]


def test_an_audiomoth_header_gives_the_recording_time_with_its_zone(site1):
    run(site1, timezone="America/New_York")  # the header names UTC: the recorders' zone is not used

    times = dict(Recording.objects.values_list("path", "recorded_at"))
    # "Recorded at 10:25:00 04/04/2020 (UTC) by AudioMoth 24526B065D325963 ..." in metadata.wav's INFO comment;
    # 1min.wav is an AudioMoth file too.
    assert times["site1/metadata.wav"] == datetime(2020, 4, 4, 10, 25, tzinfo=UTC)
    assert times["site1/1min.wav"] == datetime(2018, 5, 4, 9, 32, tzinfo=UTC)
    assert times["site1/rugr_drum.wav"] is None


def test_the_header_wins_over_the_file_name_which_stays_the_fallback(audio_root):
    noise = np.zeros(8000, dtype=np.float32)
    comment = info_comment("Recorded at 06:15:00 02/05/2023 (UTC-4) by AudioMoth 24F319055FDF2F5B at medium gain.")
    wav_with_chunk(audio_root / "20230502_101500.WAV", noise, 8000, b"LIST", comment)
    write_audio(audio_root / "20230503_101500.WAV")

    run(audio_root)

    times = dict(Recording.objects.values_list("path", "recorded_at"))
    assert times == {
        "20230502_101500.WAV": datetime(2023, 5, 2, 10, 15, tzinfo=UTC),  # 06:15 at UTC-4
        "20230503_101500.WAV": datetime(2023, 5, 3, 10, 15, tzinfo=UTC),
    }


def test_a_guano_file_gives_its_time_and_place_to_the_recording(audio_root):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype("float32")
    fields = {"Timestamp": "2021-06-11T21:14:03-04:00", "Loc Position": "42.4534 -76.4735", "Make": "Pettersson"}
    (audio_root / "pond").mkdir()
    wav_with_chunk(audio_root / "pond" / "bat1.wav", noise, 8000, b"guan", guano(fields))
    wav_with_chunk(audio_root / "pond" / "bat2.wav", noise, 8000, b"guan", guano({"Timestamp": "2021-06-11T23:00:00"}))

    assert run(audio_root, timezone="America/New_York", site="Pond", lat=42.0, lon=-76.0).splitlines() == [
        "Imported 2, already present 0, failed 0"
    ]

    first, second = Recording.objects.order_by("path")
    assert (first.duration, first.samplerate) == (2.0, 8000)
    assert first.recorded_at == datetime(2021, 6, 12, 1, 14, 3, tzinfo=UTC)
    assert (first.latitude, first.longitude) == (42.4534, -76.4735)  # the recorder's own place, not the site's
    assert second.recorded_at == datetime(2021, 6, 11, 23, 0, tzinfo=ZoneInfo("America/New_York"))
    assert (second.latitude, second.longitude) == (None, None)


def test_unreadable_guano_fields_are_reported_and_the_recording_imports_without_them(audio_root):
    noise = np.zeros(8000, dtype=np.float32)
    fields = {"Timestamp": "yesterday", "Loc Position": "142.1 12.0"}
    wav_with_chunk(audio_root / "20230503_101500.wav", noise, 8000, b"guan", guano(fields))

    lines = run(audio_root).splitlines()

    assert lines == [
        "Imported 1, already present 0, failed 0",
        "20230503_101500.wav: imported, but GUANO Timestamp 'yesterday' is not an ISO 8601 date and time (left out)",
        "20230503_101500.wav: imported, but GUANO Loc Position '142.1 12.0' is not a latitude in -90..90 and a "
        "longitude in -180..180 (left out)",
    ]
    recording = Recording.objects.get()
    assert recording.recorded_at == datetime(2023, 5, 3, 10, 15, tzinfo=UTC)  # from its name
    assert (recording.latitude, recording.longitude) == (None, None)


def test_a_flac_of_unknown_length_imports_with_the_length_decoded(audio_root):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * 8000 + 1234).astype("float32")
    flac_with_total_samples(audio_root / "stream.flac", samples, 8000, total_samples=0)
    assert soundfile.info(audio_root / "stream.flac").duration > 1e15  # what the header alone gives

    assert run(audio_root).splitlines() == ["Imported 1, already present 0, failed 0"]
    recording = Recording.objects.get()
    assert (recording.duration, recording.samplerate, recording.channels) == (3.15425, 8000, 1)
    assert recording.sha256 == sha256(audio_root / "stream.flac")


def test_a_file_whose_header_claims_months_is_refused_with_the_reason(audio_root):
    samples = np.zeros(8000, dtype=np.float32)
    flac_with_total_samples(audio_root / "broken.flac", samples, 8000, total_samples=(1 << 36) - 1)
    write_audio(audio_root / "good.wav")

    assert run(audio_root).splitlines() == [
        "Imported 1, already present 0, failed 1",
        "broken.flac: the file says it lasts 8.59e+06 s, more than the 7 days a recording may last: its header is "
        "broken; re-export or re-encode it",
    ]
    assert list(Recording.objects.values_list("path", flat=True)) == ["good.wav"]
