"""The validation API on a real BirdNET job: the review sample, verdicts (one by one, in bulk), calibration,
threshold sets (CRUD, permissions, CSV, from calibration), ?thresholds= on the detection lists, evaluation."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from echoroo.models import ClipPredictionTag
from inference import services as jobs
from validation import services
from validation.calibration import MIN_EACH, probability
from validation.models import SpeciesThreshold, ThresholdSet, Verdict
from validation.sampling import bin_counts, review_sample

pytestmark = pytest.mark.django_db

THRUSH = "Hylocichla mustelina"
THRUSH_LABEL = "Hylocichla mustelina_Wood Thrush"
VERDICTS = "/api/v1/verdicts/"
SETS = "/api/v1/threshold-sets/"
CALIBRATION = "/api/v1/calibration/"
# The thrush's 20 detections by score, lowest first: wrong ones mixed among the correct (a finite fit).
WRONG_RANKS = {0, 1, 2, 3, 4, 6, 8, 11, 13, 15}


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def job_url(job, action: str) -> str:
    return f"/api/v1/inference/jobs/{job.uuid}/{action}/"


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user(username="birder", password="pw-birder-1")


@pytest.fixture
def thrush(job):
    return services.species_tag(THRUSH, job=job)


def detections_of(job, tag) -> list[ClipPredictionTag]:
    """The job's detections of a species, lowest score first."""
    rows = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=tag).select_related("clip_prediction__clip")
    return list(rows.order_by("score", "pk"))


@pytest.fixture
def judged(job, thrush, user) -> list[Verdict]:
    """`user`'s verdicts on every thrush detection: 10 correct, 10 wrong, mixed by score."""
    rows = detections_of(job, thrush)
    assert len(rows) == 2 * MIN_EACH
    return Verdict.objects.bulk_create(
        Verdict(
            clip=row.clip_prediction.clip,
            species=thrush,
            reviewer=user,
            verdict=Verdict.Value.WRONG if rank in WRONG_RANKS else Verdict.Value.CORRECT,
        )
        for rank, row in enumerate(rows)
    )


def post_verdict(client, clip, species=THRUSH, verdict="correct", **more):
    return client.post(
        VERDICTS, {"clip": str(clip.uuid), "species": species, "verdict": verdict, **more}, format="json"
    )


# Who may do what


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", VERDICTS),
        ("post", VERDICTS),
        ("post", f"{VERDICTS}bulk/"),
        ("get", CALIBRATION),
        ("get", SETS),
        ("post", SETS),
        ("post", f"{SETS}import/"),
        ("post", f"{SETS}from-calibration/"),
        ("get", "/api/v1/inference/jobs/00000000-0000-0000-0000-000000000000/review-sample/"),
        ("get", "/api/v1/inference/jobs/00000000-0000-0000-0000-000000000000/similar/"),
        ("get", "/api/v1/inference/jobs/00000000-0000-0000-0000-000000000000/evaluation/"),
    ],
)
def test_anonymous_requests_are_refused(db, method, path):
    assert getattr(APIClient(), method)(path, format="json").status_code == 403


# The review sample


def test_the_review_sample_is_stratified_and_the_same_for_the_same_seed(api_client, job, thrush):
    response = api_client.get(job_url(job, "review-sample"), {"species": THRUSH, "per_bin": 2, "seed": 7})
    assert response.status_code == 200
    body = response.json()
    counts = bin_counts(job, thrush)
    assert [b["count"] for b in body["bins"]] == counts and len(body["bins"]) == 10
    assert body["bins"][0]["low"] == pytest.approx(0.1) and body["bins"][-1]["high"] == pytest.approx(1.0)
    items = body["results"]
    assert [sum(item["bin"] == b for item in items) for b in range(10)] == [min(2, n) for n in counts]
    assert len({item["clip"] for item in items}) == len(items)
    assert all(item["bin_low"] <= item["score"] <= item["bin_high"] + 1e-9 for item in items)
    assert all(item["species"] == THRUSH_LABEL and item["verdict"] is None for item in items)
    assert {"clip", "recording", "recording_path", "start_time", "end_time", "score"} <= set(items[0])
    assert [item["clip"] for item in items] == [i.clip_uuid for i in review_sample(job, thrush, per_bin=2, seed=7)]
    again = api_client.get(job_url(job, "review-sample"), {"species": THRUSH_LABEL, "per_bin": 2, "seed": 7})
    assert again.json()["results"] == items


def test_the_sample_shows_my_verdict_and_not_anothers(api_client, stranger, job):
    first = api_client.get(job_url(job, "review-sample"), {"species": THRUSH, "seed": 3}).json()["results"][0]
    clip = ClipPredictionTag.objects.get(
        clip_prediction__job=job, clip_prediction__clip__uuid=first["clip"], tag__value=THRUSH_LABEL
    ).clip_prediction.clip
    assert post_verdict(client_of(stranger), clip, verdict="wrong").status_code == 201
    assert post_verdict(api_client, clip, verdict="other", other_species="Turdus migratorius").status_code == 201
    mine = api_client.get(job_url(job, "review-sample"), {"species": THRUSH, "seed": 3}).json()["results"][0]
    assert mine["verdict"]["verdict"] == "other"
    assert mine["verdict"]["other_species"] == "Turdus migratorius_American Robin"


@pytest.mark.parametrize(
    "query, field",
    [
        ({}, "species"),
        ({"species": "Nonesuch birdus"}, "species"),
        ({"species": THRUSH, "per_bin": 0}, "per_bin"),
        ({"species": THRUSH, "per_bin": 1000}, "per_bin"),
        ({"species": THRUSH, "seed": "x"}, "seed"),
        ({"species": THRUSH, "bins": 0}, "bins"),
    ],
)
def test_a_bad_sample_query_is_a_400_naming_the_parameter(api_client, job, query, field):
    response = api_client.get(job_url(job, "review-sample"), query)
    assert response.status_code == 400 and list(response.json()) == [field]


def test_the_sample_of_no_job_is_a_404(api_client, db):
    missing = "/api/v1/inference/jobs/00000000-0000-0000-0000-000000000000/review-sample/"
    assert api_client.get(missing, {"species": THRUSH}).status_code == 404


# Verdicts


def test_a_verdict_is_stored_then_replaced_by_its_reviewers_next_one(api_client, user, job, thrush):
    clip = detections_of(job, thrush)[-1].clip_prediction.clip
    first = post_verdict(api_client, clip, verdict="wrong")
    assert first.status_code == 201
    body = first.json()
    assert body["clip"] == str(clip.uuid) and body["species"] == THRUSH_LABEL and body["verdict"] == "wrong"
    assert body["reviewer"] == user.username and body["other_species"] is None and body["bulk"] is False
    second = post_verdict(api_client, clip, species=THRUSH_LABEL, verdict="correct")
    assert second.status_code == 201 and second.json()["uuid"] == body["uuid"]
    assert list(Verdict.objects.values_list("verdict", "reviewer_id")) == [("correct", user.pk)]


def test_anothers_verdict_on_the_same_clip_is_their_own(api_client, stranger, job, thrush):
    clip = detections_of(job, thrush)[-1].clip_prediction.clip
    post_verdict(api_client, clip, verdict="correct")
    post_verdict(client_of(stranger), clip, verdict="wrong")
    assert sorted(Verdict.objects.values_list("reviewer__username", "verdict")) == [
        ("birder", "wrong"),
        ("ecologist", "correct"),
    ]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"verdict": "other"}, "other_species"),
        ({"verdict": "maybe"}, "verdict"),
        ({"species": "Nonesuch birdus"}, "species"),
        ({"species": "Turdus migratorius"}, "species"),  # detected in the job, but not on this clip
        ({"clip": "00000000-0000-0000-0000-000000000000"}, "clip"),
        ({"verdict": "other", "other_species": "Nonesuch birdus"}, "other_species"),
    ],
)
def test_a_bad_verdict_is_a_400_naming_the_field_and_writes_nothing(api_client, job, thrush, change, field):
    clip = detections_of(job, thrush)[-1].clip_prediction.clip
    body = {"clip": str(clip.uuid), "species": THRUSH, "verdict": "correct", **change}
    response = api_client.post(VERDICTS, body, format="json")
    assert response.status_code == 400 and list(response.json()) == [field], response.json()
    assert not Verdict.objects.exists()


def test_verdicts_filter_by_job_species_verdict_and_reviewer(api_client, stranger, field_dataset, job, thrush):
    rows = detections_of(job, thrush)
    post_verdict(api_client, rows[0].clip_prediction.clip, verdict="wrong")
    post_verdict(api_client, rows[1].clip_prediction.clip, verdict="correct")
    post_verdict(client_of(stranger), rows[1].clip_prediction.clip, verdict="unsure")
    warbler = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag__value__startswith="Setophaga citrina")
    post_verdict(api_client, warbler.first().clip_prediction.clip, species="Setophaga citrina")
    # A second job on the same recordings: the verdicts are on clips it did not detect at this threshold.
    other_job = jobs.start_job(
        jobs.create_job(model_name="birdnet", dataset=field_dataset, config={"confidence_threshold": 0.99}), sync=True
    )

    def listed(**query) -> list[tuple[str, str]]:
        response = api_client.get(VERDICTS, query)
        assert response.status_code == 200
        return sorted((v["species"].split("_")[0], v["verdict"]) for v in response.json()["results"])

    assert len(listed()) == 4
    assert listed(species=THRUSH) == [(THRUSH, "correct"), (THRUSH, "unsure"), (THRUSH, "wrong")]
    assert listed(species=THRUSH, verdict="wrong") == [(THRUSH, "wrong")]
    assert listed(reviewer="birder") == [(THRUSH, "unsure")]
    assert listed(mine="true", species=THRUSH) == [(THRUSH, "correct"), (THRUSH, "wrong")]
    assert len(listed(job=str(job.uuid))) == 4
    assert listed(job=str(other_job.uuid)) == []
    assert listed(job="00000000-0000-0000-0000-000000000000") == []
    assert listed(clip=str(rows[1].clip_prediction.clip.uuid)) == [(THRUSH, "correct"), (THRUSH, "unsure")]
    for query, field in [
        ({"verdict": "maybe"}, "verdict"),
        ({"species": "Nonesuch"}, "species"),
        ({"job": "x"}, "job"),
    ]:
        response = api_client.get(VERDICTS, query)
        assert response.status_code == 400 and list(response.json()) == [field]


def test_only_its_reviewer_undoes_a_verdict(api_client, stranger, staff, job, thrush):
    clip = detections_of(job, thrush)[-1].clip_prediction.clip
    url = f"{VERDICTS}{post_verdict(api_client, clip).json()['uuid']}/"
    assert client_of(stranger).get(url).status_code == 200
    assert client_of(stranger).delete(url).status_code == 403
    assert client_of(staff).delete(url).status_code == 403
    assert Verdict.objects.count() == 1
    assert api_client.delete(url).status_code == 204
    assert not Verdict.objects.exists()


def test_similar_detections_leave_out_my_judged_clips_and_a_bulk_verdict_takes_them(api_client, job, thrush):
    judged = detections_of(job, thrush)[-1].clip_prediction.clip
    post_verdict(api_client, judged)
    response = api_client.get(job_url(job, "similar"), {"clip": str(judged.uuid), "species": THRUSH, "limit": 5})
    assert response.status_code == 200
    similar = response.json()
    assert len(similar) == 5 and [s["similarity"] for s in similar] == sorted(s["similarity"] for s in similar)[::-1]
    assert str(judged.uuid) not in {s["clip"] for s in similar}
    picked = [s["clip"] for s in similar[:3]]
    bulk = {"like_clip": str(judged.uuid), "clips": picked, "species": THRUSH, "verdict": "correct"}
    given = api_client.post(f"{VERDICTS}bulk/", bulk, format="json")
    assert given.status_code == 201
    assert sorted(v["clip"] for v in given.json()) == sorted(picked)
    assert all(v["bulk"] and v["like_clip"] == str(judged.uuid) for v in given.json())
    assert Verdict.objects.filter(bulk=True, like_clip=judged).count() == 3
    again = api_client.get(job_url(job, "similar"), {"clip": str(judged.uuid), "species": THRUSH, "limit": 5})
    assert not {s["clip"] for s in again.json()} & set(picked)
    assert api_client.get(VERDICTS, {"bulk": "true"}).json()["results"][0]["bulk"] is True


@pytest.mark.parametrize(
    "change, field",
    [
        ({"clips": []}, "clips"),
        ({"clips": ["00000000-0000-0000-0000-000000000000"]}, "clips"),
        ({"verdict": "other"}, "other_species"),
        ({"species": "Turdus migratorius"}, "clips"),
    ],
)
def test_a_bad_bulk_verdict_is_a_400_naming_the_field_and_writes_nothing(api_client, job, thrush, change, field):
    rows = detections_of(job, thrush)
    bulk = {
        "like_clip": str(rows[-1].clip_prediction.clip.uuid),
        "clips": [str(row.clip_prediction.clip.uuid) for row in rows[:3]],
        "species": THRUSH,
        "verdict": "correct",
        **change,
    }
    response = api_client.post(f"{VERDICTS}bulk/", bulk, format="json")
    assert response.status_code == 400 and list(response.json()) == [field], response.json()
    assert not Verdict.objects.exists()


# Calibration


def test_calibration_with_too_few_verdicts_names_the_missing_counts(api_client, job, thrush):
    rows = detections_of(job, thrush)
    for row in rows[:3]:
        post_verdict(api_client, row.clip_prediction.clip, verdict="wrong")
    post_verdict(api_client, rows[-1].clip_prediction.clip, verdict="unsure")
    response = api_client.get(CALIBRATION, {"job": str(job.uuid), "species": THRUSH})
    assert response.status_code == 400
    body = response.json()
    assert body["needed"] == {"correct": MIN_EACH, "wrong": MIN_EACH - 3}
    assert (body["n_correct"], body["n_wrong"]) == (0, 3)
    assert f"{MIN_EACH} more correct and {MIN_EACH - 3} more wrong" in body["verdicts"][0]


def test_calibration_fits_the_verdicts_once_there_are_enough(api_client, job, thrush, judged):
    response = api_client.get(CALIBRATION, {"job": str(job.uuid), "species": THRUSH_LABEL})
    assert response.status_code == 200
    body = response.json()
    expected = services.calibrate_species(job, thrush)
    assert (body["n_correct"], body["n_wrong"]) == (MIN_EACH, MIN_EACH)
    assert body["coefficients"] == pytest.approx(list(expected.coefficients))
    assert body["coefficients"][1] > 0
    assert set(body["thresholds"]) == {"0.9", "0.95", "0.99"} == set(body["intervals"]) == set(body["precision_above"])
    assert body["thresholds"] == expected.thresholds
    assert body["species"] == THRUSH_LABEL and body["job"] == str(job.uuid)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"species": THRUSH}, "job"),
        ({"job": "00000000-0000-0000-0000-000000000000", "species": THRUSH}, "job"),
        ({"job": "{job}"}, "species"),
        ({"job": "{job}", "species": "Nonesuch birdus"}, "species"),
    ],
)
def test_a_bad_calibration_query_is_a_400_naming_it(api_client, job, query, field):
    query = {key: value.format(job=job.uuid) for key, value in query.items()}
    response = api_client.get(CALIBRATION, query)
    assert response.status_code == 400 and list(response.json()) == [field]


# Threshold sets


def test_a_threshold_set_is_created_listed_and_read_back_by_label(api_client, job, user):
    body = {"name": "strict thrush", "default_threshold": 0.5, "thresholds": {THRUSH: 0.9}}
    created = api_client.post(SETS, body, format="json")
    assert created.status_code == 201
    found = created.json()
    assert found["thresholds"] == {THRUSH_LABEL: 0.9} and found["default_threshold"] == 0.5
    assert found["created_by"] == user.username and found["can_change"] is True
    assert api_client.get(f"{SETS}{found['uuid']}/").json() == found
    assert [s["name"] for s in api_client.get(SETS).json()["results"]] == ["strict thrush"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": ""}, "name"),
        ({"name": "taken"}, "name"),
        ({"default_threshold": 1.5}, "default_threshold"),
        ({"default_threshold": None}, "default_threshold"),
        ({"thresholds": {THRUSH: 2}}, "thresholds"),
        ({"thresholds": {"Nonesuch birdus": 0.5}}, "thresholds"),
    ],
)
def test_a_bad_threshold_set_is_a_400_naming_the_field_and_writes_nothing(api_client, job, user, change, field):
    services.save_threshold_set(name="taken", default_threshold=0.5, thresholds={}, by=user)
    body = {"name": "new", "default_threshold": 0.5, "thresholds": {THRUSH: 0.9}, **change}
    response = api_client.post(SETS, body, format="json")
    assert response.status_code == 400 and list(response.json()) == [field], response.json()
    assert list(ThresholdSet.objects.values_list("name", flat=True)) == ["taken"]
    assert not SpeciesThreshold.objects.exists()


def test_a_set_is_changed_and_deleted_by_its_creator_or_staff_only(api_client, stranger, staff, job, user):
    found = services.save_threshold_set(name="mine", default_threshold=0.5, thresholds={THRUSH: 0.9}, by=user)
    url = f"{SETS}{found.uuid}/"
    outsider = client_of(stranger)
    assert outsider.get(url).json()["can_change"] is False
    assert outsider.patch(url, {"default_threshold": 0.1}, format="json").status_code == 403
    assert outsider.put(url, {"name": "theirs", "default_threshold": 0.1}, format="json").status_code == 403
    assert outsider.delete(url).status_code == 403
    found.refresh_from_db()
    assert (found.name, found.default_threshold) == ("mine", 0.5)

    patched = client_of(staff).patch(url, {"default_threshold": 0.3}, format="json")
    assert patched.status_code == 200
    assert patched.json()["default_threshold"] == 0.3 and patched.json()["thresholds"] == {THRUSH_LABEL: 0.9}
    replaced = api_client.put(url, {"name": "mine, renamed", "default_threshold": 0.4, "thresholds": {}}, format="json")
    assert replaced.status_code == 200 and replaced.json()["thresholds"] == {}
    assert api_client.delete(url).status_code == 204
    assert not ThresholdSet.objects.exists()


def test_renaming_a_set_to_a_taken_name_is_a_400(api_client, job, user):
    services.save_threshold_set(name="taken", default_threshold=0.5, thresholds={}, by=user)
    mine = services.save_threshold_set(name="mine", default_threshold=0.5, thresholds={}, by=user)
    response = api_client.patch(f"{SETS}{mine.uuid}/", {"name": "taken"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["name"]


def test_a_set_goes_out_as_csv_and_comes_back_the_same(api_client, job, user):
    warbler = "Setophaga citrina_Hooded Warbler"
    found = services.save_threshold_set(
        name="Two species", default_threshold=0.5, thresholds={THRUSH: 0.9, warbler: 0.25}, by=user
    )
    exported = api_client.get(f"{SETS}{found.uuid}/csv/")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    assert 'filename="two-species.csv"' in exported["Content-Disposition"]
    text = exported.content.decode()
    assert list(csv.reader(io.StringIO(text))) == [["species", "threshold"], [THRUSH_LABEL, "0.9"], [warbler, "0.25"]]

    upload = SimpleUploadedFile("t.csv", text.encode(), content_type="text/csv")
    from_file = api_client.post(
        f"{SETS}import/", {"name": "from file", "default_threshold": 0.5, "file": upload}, format="multipart"
    )
    assert from_file.status_code == 201
    assert from_file.json()["thresholds"] == {THRUSH_LABEL: 0.9, warbler: 0.25}
    from_text = api_client.post(
        f"{SETS}import/", {"name": "from text", "default_threshold": 0.2, "text": text}, format="json"
    )
    assert from_text.status_code == 201 and from_text.json()["thresholds"] == from_file.json()["thresholds"]
    assert api_client.get(f"{SETS}{from_text.json()['uuid']}/csv/").content.decode() == text


@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": "species,threshold\nHylocichla mustelina,high\n"}, "text"),
        ({"text": "Nonesuch birdus,0.5\n"}, "text"),
        ({"text": "Hylocichla mustelina,1.5\n"}, "text"),
        ({}, "file"),
        ({"text": "x", "file": "y"}, "file"),
    ],
)
def test_a_bad_csv_is_a_400_naming_where_it_came_from(api_client, job, body, field):
    if "file" in body:
        body["file"] = SimpleUploadedFile("t.csv", b"Hylocichla mustelina,0.5\n")
    response = api_client.post(
        f"{SETS}import/", {"name": "imported", "default_threshold": 0.5, **body}, format="multipart"
    )
    assert response.status_code == 400 and list(response.json()) == [field], response.json()
    assert not ThresholdSet.objects.exists()


def test_a_set_from_calibration_takes_each_calibrated_species_threshold(api_client, job, thrush, judged):
    body = {"name": "calibrated", "job": str(job.uuid), "target": 0.9, "default_threshold": 0.8}
    response = api_client.post(f"{SETS}from-calibration/", body, format="json")
    assert response.status_code == 201, response.json()
    found = response.json()
    expected = services.calibrate_species(job, thrush).thresholds["0.9"]
    assert expected is not None
    assert found["threshold_set"]["thresholds"] == {THRUSH_LABEL: pytest.approx(expected)}
    assert found["threshold_set"]["default_threshold"] == 0.8
    species = set(ClipPredictionTag.objects.filter(clip_prediction__job=job).values_list("tag__value", flat=True))
    assert set(found["skipped"]) == species - {THRUSH_LABEL}
    assert set(found["skipped"].values()) == {"no verdicts"}


def test_a_set_from_calibration_says_why_no_species_could_be_calibrated(api_client, job, thrush):
    post_verdict(api_client, detections_of(job, thrush)[0].clip_prediction.clip, verdict="wrong")
    body = {"name": "calibrated", "job": str(job.uuid), "default_threshold": 0.8}
    response = api_client.post(f"{SETS}from-calibration/", body, format="json")
    assert response.status_code == 400 and list(response.json()) == ["job"]
    assert "9 more wrong" in response.json()["job"][0]
    bad_target = api_client.post(f"{SETS}from-calibration/", {**body, "target": 0.8}, format="json")
    assert bad_target.status_code == 400 and list(bad_target.json()) == ["target"]
    assert not ThresholdSet.objects.exists()


# ?thresholds= on the detection lists


@pytest.mark.parametrize("listing", ["job", "clip-predictions"])
def test_a_threshold_set_keeps_each_species_above_its_own_threshold_and_others_at_the_default(
    api_client, job, thrush, user, listing
):
    services.save_threshold_set(name="strict thrush", default_threshold=0.5, thresholds={THRUSH: 0.9}, by=user)
    url, query = (
        (job_url(job, "detections"), {}) if listing == "job" else ("/api/v1/clip-predictions/", {"job": str(job.uuid)})
    )
    response = api_client.get(url, {**query, "thresholds": "strict thrush", "page_size": 1000})
    assert response.status_code == 200
    listed = {row["uuid"]: {tag["value"] for tag in row["tags"]} for row in response.json()["results"]}
    expected: dict[str, set[str]] = {}
    for row in ClipPredictionTag.objects.filter(clip_prediction__job=job).select_related("tag", "clip_prediction"):
        if row.score >= (0.9 if row.tag_id == thrush.pk else 0.5):
            expected.setdefault(str(row.clip_prediction.uuid), set()).add(row.tag.value)
    assert listed == expected
    assert any(THRUSH_LABEL in tags for tags in listed.values())
    everything = api_client.get(url, {**query, "page_size": 1000}).json()["results"]
    assert len(everything) > len(listed)
    only_thrush = api_client.get(url, {**query, "thresholds": "strict thrush", "species": THRUSH_LABEL})
    assert {r["uuid"] for r in only_thrush.json()["results"]} == {u for u, t in expected.items() if THRUSH_LABEL in t}


@pytest.mark.parametrize("listing", ["job", "clip-predictions"])
def test_an_unknown_threshold_set_is_a_400_naming_thresholds(api_client, job, listing):
    url = job_url(job, "detections") if listing == "job" else "/api/v1/clip-predictions/"
    response = api_client.get(url, {"thresholds": "no such set"})
    assert response.status_code == 400 and list(response.json()) == ["thresholds"]
    assert "no threshold set is named 'no such set'" in response.json()["thresholds"][0]


# Evaluation


def test_the_evaluation_counts_verdicts_per_bin_and_estimates_precision_at_the_chosen_threshold(
    api_client, stranger, job, thrush, judged, user
):
    warbler = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag__value__startswith="Setophaga citrina")
    post_verdict(client_of(stranger), warbler.first().clip_prediction.clip, species="Setophaga citrina")
    post_verdict(client_of(stranger), detections_of(job, thrush)[-1].clip_prediction.clip, verdict="unsure")
    services.save_threshold_set(name="strict thrush", default_threshold=0.5, thresholds={THRUSH: 0.9}, by=user)
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(job_url(job, "evaluation"), {"thresholds": "strict thrush"})
    assert response.status_code == 200
    assert len(queries) <= 12
    body = response.json()
    assert body["job"] == str(job.uuid) and body["thresholds"] == "strict thrush" and len(body["bin_edges"]) == 11
    assert [s["species"] for s in body["species"]] == [THRUSH_LABEL, "Setophaga citrina_Hooded Warbler"]
    thrush_row, warbler_row = body["species"]
    assert warbler_row["verdicts"] == {"correct": 1, "wrong": 0, "unsure": 0, "other": 0}
    assert warbler_row["calibration"] is None and "9 more correct" in warbler_row["calibration_problem"]
    assert warbler_row["threshold"] == 0.5 and warbler_row["precision_at_threshold"] is None

    assert thrush_row["verdicts"] == {"correct": 10, "wrong": 10, "unsure": 1, "other": 0}
    assert thrush_row["detections"] == 20 and [b["detections"] for b in thrush_row["bins"]] == bin_counts(job, thrush)
    scores = {row.clip_prediction.clip_id: row.score for row in detections_of(job, thrush)}
    edges = body["bin_edges"]
    for index, found in enumerate(thrush_row["bins"]):
        inside = [v for v in judged if edges[index] <= scores[v.clip_id] < edges[index + 1] + 1e-12]
        correct = sum(v.verdict == "correct" for v in inside)
        assert (found["verdicts"]["correct"], found["verdicts"]["wrong"]) == (correct, len(inside) - correct)
        assert found["share_correct"] == (pytest.approx(correct / len(inside)) if inside else None)
    fit = services.calibrate_species(job, thrush)
    assert thrush_row["calibration"]["coefficients"] == pytest.approx(list(fit.coefficients))
    assert thrush_row["calibration"]["thresholds"] == pytest.approx(fit.thresholds)
    above = np.array([score for score in scores.values() if score >= 0.9])
    assert thrush_row["threshold"] == 0.9 and thrush_row["detections_at_threshold"] == len(above)
    assert thrush_row["precision_at_threshold"] == pytest.approx(probability(np.array(fit.coefficients), above).mean())

    without_set = api_client.get(job_url(job, "evaluation")).json()
    assert without_set["thresholds"] is None
    assert without_set["species"][0]["threshold"] == pytest.approx(0.1)
    assert without_set["species"][0]["detections_at_threshold"] == 20
    unknown = api_client.get(job_url(job, "evaluation"), {"thresholds": "no such set"})
    assert unknown.status_code == 400 and list(unknown.json()) == ["thresholds"]


def test_the_evaluation_of_a_job_without_verdicts_lists_no_species(api_client, job):
    response = api_client.get(job_url(job, "evaluation"))
    assert response.status_code == 200 and response.json()["species"] == []


# The admin


def test_the_admin_lists_filters_and_searches_verdicts_and_edits_sets_inline(admin_client, job, thrush, judged, user):
    found = services.save_threshold_set(name="strict", default_threshold=0.5, thresholds={THRUSH: 0.9}, by=user)
    listing = "/admin/validation/verdict/"
    assert admin_client.get(listing).status_code == 200
    assert (
        admin_client.get(listing, {"verdict__exact": "wrong", "bulk__exact": "0", "q": "Wood Thrush"}).status_code
        == 200
    )
    assert admin_client.get(f"{listing}{judged[0].pk}/change/").status_code == 200
    page = admin_client.get(f"/admin/validation/thresholdset/{found.pk}/change/")
    assert page.status_code == 200 and b"species-0-threshold" in page.content
