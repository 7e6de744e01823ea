"""Search by sound event: clips, sound events or both against an exact numpy ranking; the API's answers; the page.

The space: the clips of tests/search/conftest.py (500, 64-d, clustered) and 1,000 sound events on the
same recordings whose vectors lie in the same clusters (a clip's vector moved a little), stored with
`store_embeddings("sound_event", ...)` and indexed by the run's own HNSW index. A third of the events
are annotations (a box with species tags), the rest a job's detections (one species tag, scored).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, transaction

from annotations.models import SoundEventAnnotation, SoundEventAnnotationTag
from echoroo.models import SPECIES, ModelRun, SoundEvent, SoundEventPrediction, SoundEventPredictionTag, Tag
from embeddings.indexes import ensure_hnsw_index, index_name
from embeddings.storage import store_embeddings
from search.errors import SearchError
from search.queries import MAX_EF_SEARCH, Filters, nearest_sql, vector_literal
from search.services import SearchResult, SoundEventResult, search_similar
from tests.search.conftest import DIMENSION, FIRST_DAY, Space, make_space

pytestmark = pytest.mark.django_db

ANY = -1.0  # min_similarity that keeps every result
EVENTS_PER_RECORDING = 50
BLACKBIRD, ROBIN, WREN = "Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin", "Troglodytes_Wren"
SEARCH = "/api/v1/embeddings/search/"
KIND_ORDER = {"clip": 0, "sound_event": 1}


@dataclass
class Items:
    """Every stored item of the run, clips then sound events, in one set of parallel arrays."""

    space: Space
    kinds: np.ndarray  # "clip" | "sound_event"
    ids: np.ndarray
    vectors: np.ndarray  # float16, as stored
    recording_ids: np.ndarray
    dataset_ids: np.ndarray
    site_ids: np.ndarray
    recorded_at: np.ndarray  # datetimes
    event_ids: np.ndarray
    annotations: dict[int, tuple[uuid.UUID, list[str]]]  # sound event id -> (annotation uuid, species)
    detections: dict[int, str]  # sound event id -> species

    @property
    def model_run(self) -> ModelRun:
        return self.space.model_run

    def exact(self, query, kinds: tuple[str, ...], mask=None, limit: int = 20) -> list[tuple[str, int, float]]:
        """The exact ranking: (kind, id, similarity) of the `limit` most similar items of these kinds passing `mask`."""
        vectors = self.vectors.astype(np.float64)
        query = np.asarray(query, dtype=np.float16).astype(np.float64)  # the SQL casts the query to halfvec
        similarity = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        keep = np.isin(self.kinds, kinds) & (mask if mask is not None else True)
        rows = sorted(
            np.flatnonzero(keep), key=lambda i: (-similarity[i], KIND_ORDER[self.kinds[i]], int(self.ids[i]))
        )[:limit]
        return [(str(self.kinds[i]), int(self.ids[i]), float(similarity[i])) for i in rows]

    def row(self, kind: str, item_id: int) -> int:
        return int(np.flatnonzero((self.kinds == kind) & (self.ids == item_id))[0])

    def event(self, index: int) -> SoundEvent:
        return SoundEvent.objects.get(pk=int(self.event_ids[index]))


def make_items(seed: int = 7) -> Items:
    space = make_space(clips_per_recording=25)
    rng = np.random.default_rng(seed)
    blackbird, robin, wren = (Tag.objects.get_or_create(key=SPECIES, value=v)[0] for v in (BLACKBIRD, ROBIN, WREN))
    events = SoundEvent.objects.bulk_create(
        SoundEvent(
            recording=recording,
            start_time=1.5 * j,
            end_time=1.5 * j + 0.4 + (j % 4) * 0.3,
            low_freq=1000.0 + 100 * (j % 10) if j % 3 == 0 else None,
            high_freq=4000.0 + 200 * (j % 10) if j % 3 == 0 else None,
        )
        for recording in space.recordings
        for j in range(EVENTS_PER_RECORDING)
    )
    run = space.model_run
    # A third are a person's boxes, with one or two species; the rest a job's detections (no job needed here).
    boxes = [event for number, event in enumerate(events) if number % 3 == 0]
    detected = [event for number, event in enumerate(events) if number % 3]
    saved = SoundEventAnnotation.objects.bulk_create(
        SoundEventAnnotation(sound_event=event, recording_id=event.recording_id) for event in boxes
    )
    species_of = {annotation.pk: [blackbird, robin] if n % 2 else [wren] for n, annotation in enumerate(saved)}
    SoundEventAnnotationTag.objects.bulk_create(
        SoundEventAnnotationTag(annotation=annotation, tag=tag)
        for annotation in saved
        for tag in species_of[annotation.pk]
    )
    annotations = {a.sound_event_id: (a.uuid, [t.value for t in species_of[a.pk]]) for a in saved}
    predictions = SoundEventPrediction.objects.bulk_create(
        SoundEventPrediction(sound_event=event, model_run=run) for event in detected
    )
    tag_of = {p.pk: robin if n % 2 else blackbird for n, p in enumerate(predictions)}
    SoundEventPredictionTag.objects.bulk_create(
        SoundEventPredictionTag(sound_event_prediction=p, tag=tag_of[p.pk], score=0.8) for p in predictions
    )
    detections = {p.sound_event_id: tag_of[p.pk].value for p in predictions}
    # Each event lies near a clip of its own recording's stored vectors: the same clusters, moved a little.
    event_ids = np.array([event.pk for event in events], dtype=np.int64)
    near = rng.integers(0, len(space.clip_ids), len(events))
    event_vectors = (space.vectors[near].astype(np.float64) + 0.03 * rng.normal(size=(len(events), DIMENSION))).astype(
        np.float16
    )
    store_embeddings("sound_event", event_ids, run.pk, event_vectors)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        ensure_hnsw_index("sound_event", run.pk, DIMENSION)
        cursor.execute("ANALYZE embeddings_soundeventembedding, echoroo_soundevent")
    recording_of = {recording.pk: recording for recording in space.recordings}
    event_recordings = [recording_of[event.recording_id] for event in events]
    return Items(
        space=space,
        kinds=np.array(["clip"] * len(space.clip_ids) + ["sound_event"] * len(events)),
        ids=np.concatenate([space.clip_ids, event_ids]),
        vectors=np.concatenate([space.vectors, event_vectors]),
        recording_ids=np.concatenate([space.recording_ids, [r.pk for r in event_recordings]]),
        dataset_ids=np.concatenate([space.dataset_ids, [r.dataset_id for r in event_recordings]]),
        site_ids=np.concatenate([space.site_ids, [r.site_id for r in event_recordings]]),
        recorded_at=np.array([*space.recorded_at, *(r.recorded_at for r in event_recordings)], dtype=object),
        event_ids=event_ids,
        annotations=annotations,
        detections=detections,
    )


@pytest.fixture
def items(db) -> Items:
    return make_items()


def found(results) -> list[tuple[str, int, float]]:
    return [
        (result.target, result.clip.pk if result.target == "clip" else result.sound_event.pk, result.similarity)
        for result in results
    ]


def assert_exact(results, exact) -> None:
    assert [(kind, item_id) for kind, item_id, _ in found(results)] == [(kind, item_id) for kind, item_id, _ in exact]
    np.testing.assert_allclose([s for *_, s in found(results)], [s for *_, s in exact], atol=1e-5)


def exactly(search):
    """A search run as an exact scan (no index): its results must be the exact ranking itself."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        return search()


TARGET_KINDS = {"clips": ("clip",), "sound_events": ("sound_event",), "both": ("clip", "sound_event")}


# --- the service against the exact ranking --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["clips", "sound_events", "both"])
def test_a_search_by_a_sound_event_ranks_as_numpy_does(items, target):
    event = items.event(123)
    query = items.vectors[items.row("sound_event", event.pk)]
    others = items.recording_ids != event.recording_id  # its own recording is left out by default
    exact = items.exact(query, TARGET_KINDS[target], others)
    assert_exact(exactly(lambda: search_similar(sound_event=event, target=target, min_similarity=ANY)), exact)
    # Through the HNSW indexes with a candidate list larger than the run: the same ranking.
    indexed = search_similar(sound_event=event, target=target, min_similarity=ANY, ef_search=MAX_EF_SEARCH)
    assert_exact(indexed, exact)
    if target == "both":
        assert {kind for kind, *_ in exact} == {"clip", "sound_event"}, "the merged list holds both kinds"


@pytest.mark.parametrize("target", ["clips", "sound_events", "both"])
def test_a_search_by_a_vector_ranks_as_numpy_does(items, target):
    rng = np.random.default_rng(3)
    query = items.vectors[500 + 40].astype(np.float64) + 0.02 * rng.normal(size=DIMENSION)
    exact = items.exact(query, TARGET_KINDS[target], limit=30)
    results = exactly(
        lambda: search_similar(model_name="synthetic", vector=query, target=target, limit=30, min_similarity=ANY)
    )
    assert_exact(results, exact)


def test_a_search_by_a_clip_finds_sound_events_too(items):
    clip = items.space.clip(77)
    query = items.space.vectors[77]
    exact = items.exact(query, ("clip", "sound_event"), items.recording_ids != clip.recording_id)
    assert_exact(exactly(lambda: search_similar(clip=clip, target="both", min_similarity=ANY)), exact)


def test_filters_apply_to_both_targets_as_numpy_does(items):
    event = items.event(40)
    query = items.vectors[items.row("sound_event", event.pk)]
    recording, site = items.space.recordings[7], items.space.recordings[5].site
    after, before = FIRST_DAY + timedelta(days=5), FIRST_DAY + timedelta(days=12)
    recorded_after = np.array([at >= after for at in items.recorded_at])
    recorded_before = np.array([at <= before for at in items.recorded_at])
    not_own = items.recording_ids != event.recording_id
    cases = [
        ({"dataset": items.space.small}, items.dataset_ids == items.space.small.pk),
        ({"dataset": items.space.large}, items.dataset_ids == items.space.large.pk),
        ({"site": site}, items.site_ids == site.pk),
        ({"recording": recording}, items.recording_ids == recording.pk),
        ({"recorded_after": after}, recorded_after),
        ({"recorded_before": before}, recorded_before),
        ({"recorded_after": after, "recorded_before": before}, recorded_after & recorded_before),
    ]
    for filters, mask in cases:
        if "recording" not in filters:
            mask = mask & not_own
        for target in ("sound_events", "both"):
            exact = items.exact(query, TARGET_KINDS[target], mask)
            results = exactly(lambda: search_similar(sound_event=event, target=target, min_similarity=ANY, **filters))  # noqa: B023
            assert len(results) == 20, (filters, target)
            assert all(mask[items.row(kind, item_id)] for kind, item_id, _ in found(results)), (filters, target)
            assert_exact(results, exact)
        # And through the indexes (iterative scans): every result passes the filter, the limit is filled.
        indexed = search_similar(sound_event=event, target="both", min_similarity=ANY, **filters)
        assert len(indexed) == 20 and all(mask[items.row(kind, item_id)] for kind, item_id, _ in found(indexed))


def test_the_query_event_is_never_returned_and_its_recording_only_when_asked(items):
    event = items.event(300)
    query = items.vectors[items.row("sound_event", event.pk)]
    with_own = exactly(
        lambda: search_similar(sound_event=event, target="both", exclude_own_recording=False, min_similarity=ANY)
    )
    assert ("sound_event", event.pk) not in {(kind, item_id) for kind, item_id, _ in found(with_own)}
    is_event = (items.kinds == "sound_event") & (items.ids == event.pk)
    assert_exact(with_own, items.exact(query, ("clip", "sound_event"), ~is_event))
    assert any(result.recording.pk == event.recording_id for result in with_own), "its neighbours on its recording"
    # Asking for its own recording means that recording's other clips and events are wanted.
    in_own = search_similar(sound_event=event, target="both", recording=event.recording, min_similarity=ANY)
    assert len(in_own) == 20 and {result.recording.pk for result in in_own} == {event.recording_id}
    assert event.pk not in {result.sound_event.pk for result in in_own if result.target == "sound_event"}


def test_min_similarity_and_limit_apply_to_the_merged_list(items):
    event = items.event(10)
    everything = exactly(lambda: search_similar(sound_event=event, target="both", limit=200, min_similarity=ANY))
    similarities = [result.similarity for result in everything]
    assert similarities == sorted(similarities, reverse=True)
    threshold = similarities[40]
    kept = exactly(lambda: search_similar(sound_event=event, target="both", limit=200, min_similarity=threshold))
    assert found(kept) == [item for item in found(everything) if item[2] >= threshold]
    five = exactly(lambda: search_similar(sound_event=event, target="both", limit=5, min_similarity=ANY))
    assert found(five) == found(everything)[:5]


def test_sound_event_results_carry_the_box_the_annotation_and_the_species(items):
    event = items.event(3)  # an annotation (every third event) with a band
    results = search_similar(sound_event=event, target="sound_events", limit=100, min_similarity=ANY)
    assert all(isinstance(result, SoundEventResult) for result in results)
    kinds = {result.kind for result in results}
    assert kinds == {"annotation", "detection"}
    for result in results:
        found_event = result.sound_event
        if found_event.pk in items.annotations:
            annotation_uuid, species = items.annotations[found_event.pk]
            assert result.kind == "annotation" and result.annotation_uuid == annotation_uuid
            assert list(result.species) == species
        else:
            assert result.kind == "detection" and result.annotation_uuid is None
            assert list(result.species) == [items.detections[found_event.pk]]
        stored = SoundEvent.objects.get(pk=found_event.pk)
        assert (found_event.start_time, found_event.end_time, found_event.low_freq, found_event.high_freq) == (
            stored.start_time,
            stored.end_time,
            stored.low_freq,
            stored.high_freq,
        )
    clips = search_similar(sound_event=event, min_similarity=ANY)
    assert clips and all(isinstance(result, SearchResult) for result in clips), "target clips is the default"


def test_the_plans_walk_the_runs_sound_event_index(items):
    name = index_name("sound_event", items.model_run.pk)
    for filters in (Filters(), Filters(dataset_id=items.space.large.pk), Filters(exclude_sound_event_id=1)):
        sql, params = nearest_sql("sound_event", items.model_run.pk, DIMENSION, filters, 20)
        params[0] = vector_literal(items.vectors[600])
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute("SET LOCAL enable_sort = off")  # at 1,000 rows a sort is as cheap: take the index
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert name in plan, plan
        assert f"e.model_run_id = {items.model_run.pk}" in sql


# --- which model run, and why not ------------------------------------------------------------------------------------


def test_a_sound_event_without_an_embedding_of_the_model_is_refused_saying_how_to_get_one(items):
    event = SoundEvent.objects.create(recording=items.space.recordings[0], start_time=70, end_time=71)
    with pytest.raises(SearchError) as error:
        search_similar(sound_event=event, model_name="synthetic")
    message = error.value.errors["sound_event_uuid"]
    assert f"sound event {event.uuid} has no embedding of synthetic" in message and "backfill_embeddings" in message


def test_a_sound_event_of_one_run_needs_no_model_name_and_of_two_runs_needs_one(items):
    event = items.event(0)
    assert search_similar(sound_event=event, target="sound_events", limit=3, min_similarity=ANY)
    other = ModelRun.objects.create(name="other", version="1", embedding_dimension=8)
    store_embeddings("sound_event", np.array([event.pk]), other.pk, np.ones((1, 8)))
    with pytest.raises(SearchError) as error:
        search_similar(sound_event=event)
    assert "the sound event has embeddings of several model runs" in error.value.errors["model_name"]
    named = search_similar(sound_event=event, model_name="synthetic", target="sound_events", min_similarity=ANY)
    assert len(named) == 20 and {result.model_run for result in named} == {items.model_run}


def test_a_run_with_sound_event_embeddings_only_is_searched_for_sound_events(db):
    run = ModelRun.objects.create(name="boxes", version="1", embedding_dimension=None)
    space = make_space(name="boxes-clips", clips_per_recording=2)
    event = SoundEvent.objects.create(recording=space.recordings[0], start_time=1, end_time=2)
    store_embeddings("sound_event", np.array([event.pk]), run.pk, np.full((1, 4), 0.5))
    results = search_similar(model_name="boxes", vector=[1, 1, 1, 1.1], target="sound_events", min_similarity=ANY)
    assert [result.sound_event.pk for result in results] == [event.pk]  # its dimension read from the stored row
    assert search_similar(model_name="boxes", vector=[1, 1, 1, 1.1], target="both", min_similarity=ANY)
    with pytest.raises(SearchError) as error:
        search_similar(model_name="boxes", vector=[1, 1, 1, 1.1])
    assert "boxes has no embeddings yet" in error.value.errors["model_name"]


def test_a_search_names_the_fields_it_cannot_run_with(items):
    event, clip, vector = items.event(0), items.space.clip(0), np.ones(DIMENSION)
    for options, fields in [
        ({}, {"embedding"}),
        ({"vector": vector, "sound_event": event}, {"embedding", "sound_event_uuid"}),
        ({"clip": clip, "sound_event": event}, {"clip_uuid", "sound_event_uuid"}),
        ({"vector": vector, "target": "everything"}, {"target"}),
    ]:
        with pytest.raises(SearchError) as error:
            search_similar(model_run=items.model_run, **options)
        assert set(error.value.errors) == fields, options


# --- the API ----------------------------------------------------------------------------------------------------------


def post(api_client, **body):
    return api_client.post(SEARCH, {"min_similarity": -1, **body}, format="json")


def test_the_api_answers_sound_events_with_their_boxes_and_clips_as_before(api_client, items):
    event = items.event(6)  # an annotation with a band
    response = post(api_client, sound_event_uuid=str(event.uuid), target="both", limit=40)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert len(results) == 40 and {result["target"] for result in results} == {"clip", "sound_event"}
    assert str(event.recording.uuid) not in {result["recording"]["uuid"] for result in results}
    service = search_similar(sound_event=event, target="both", limit=40, min_similarity=ANY)
    assert [r["similarity"] for r in results] == pytest.approx([r.similarity for r in service])
    for result, expected in zip(results, service, strict=True):
        run = items.model_run
        assert result["model_run"] == {"uuid": str(run.uuid), "name": run.name, "version": run.version}
        if result["target"] == "clip":
            clip = expected.clip
            assert set(result) == {"target", "clip", "recording", "similarity", "model_run"}
            assert result["clip"] == {"uuid": str(clip.uuid), "start_time": clip.start_time, "end_time": clip.end_time}
            continue
        found_event = expected.sound_event
        annotation = items.annotations.get(found_event.pk)
        assert result["sound_event"] == {
            "uuid": str(found_event.uuid),
            "start_time": found_event.start_time,
            "end_time": found_event.end_time,
            "low_freq": found_event.low_freq,
            "high_freq": found_event.high_freq,
            "annotation": str(annotation[0]) if annotation else None,
            "species": annotation[1] if annotation else [items.detections[found_event.pk]],
            "kind": "annotation" if annotation else "detection",
        }
        recording = found_event.recording
        assert result["recording"]["uuid"] == str(recording.uuid) and result["recording"]["path"] == recording.path


def test_the_api_filters_sound_events_by_dataset(api_client, items):
    event = items.event(2)
    body = {"sound_event_uuid": str(event.uuid), "target": "sound_events", "dataset": str(items.space.small.uuid)}
    results = post(api_client, **body).json()["results"]
    small = {str(r.uuid) for r in items.space.recordings if r.dataset_id == items.space.small.pk}
    assert len(results) == 20 and {result["recording"]["uuid"] for result in results} <= small


def test_the_api_takes_a_vector_for_sound_events(api_client, items):
    vector = [float(x) for x in items.vectors[items.row("sound_event", int(items.event_ids[9]))]]
    results = post(api_client, embedding=vector, model_name="synthetic", target="sound_events").json()["results"]
    assert results[0]["sound_event"]["uuid"] == str(items.event(9).uuid)  # the stored vector itself


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"sound_event_uuid": "unknown"}, {"sound_event_uuid"}),
        ({"sound_event_uuid": "not-a-uuid"}, {"sound_event_uuid"}),
        ({"sound_event_uuid": "event", "clip_uuid": "clip"}, {"sound_event_uuid", "clip_uuid"}),
        ({"sound_event_uuid": "event", "embedding": [1.0] * DIMENSION}, {"sound_event_uuid", "embedding"}),
        ({"sound_event_uuid": "event", "target": "everything"}, {"target"}),
        ({"sound_event_uuid": "event", "model_name": "birdclef"}, {"model_name"}),
        ({"sound_event_uuid": "event", "dataset": "unknown"}, {"dataset"}),
    ],
)
def test_a_bad_request_by_sound_event_is_a_400_naming_the_fields(api_client, items, body, fields):
    values = {"event": str(items.event(0).uuid), "clip": str(items.space.clip(0).uuid), "unknown": str(uuid.uuid4())}
    body = {name: values.get(value, value) if isinstance(value, str) else value for name, value in body.items()}
    response = post(api_client, **body)
    assert response.status_code == 400, response.content
    assert set(response.json()) == fields


def test_an_unknown_sound_event_and_one_without_an_embedding_are_400s_that_say_so(api_client, items):
    missing = uuid.uuid4()
    assert post(api_client, sound_event_uuid=str(missing)).json() == {
        "sound_event_uuid": [f"no sound event has the uuid {missing}"]
    }
    event = SoundEvent.objects.create(recording=items.space.recordings[0], start_time=70, end_time=71)
    response = post(api_client, sound_event_uuid=str(event.uuid))
    assert response.status_code == 400
    [message] = response.json()["sound_event_uuid"]
    assert f"sound event {event.uuid} has no embedding of any model" in message and "backfill_embeddings" in message


# --- the page ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


def style_of(html: str, marker: str) -> dict[str, float]:
    """The percentages of the first event box after `marker` in the page."""
    start = html.index(marker)
    style = re.search(r'class="event-box" style="([^"]+)"', html[start:]).group(1)
    return {name: float(value) for name, value in re.findall(r"([a-z]+): ([-\d.]+)%", style)}


def test_the_page_by_a_box_shows_the_query_box_and_result_boxes(user_client, items):
    event = items.event(3)  # an annotation: 4.5-5.8 s, 1.3-4.6 kHz, on a 48 kHz recording
    response = user_client.get("/search/", {"sound_event": str(event.uuid), "min_similarity": "-1"})
    assert response.status_code == 200
    html = response.content.decode()
    query = response.context["query"]
    assert query["sound_event"].pk == event.pk and query["kind"] == "annotation"
    recording = event.recording
    # The query's surroundings: 6 s centred on the box, its box drawn in percent of the image.
    start_s, end_s = query["view"]
    centre = (event.start_time + event.end_time) / 2
    assert (start_s, end_s) == pytest.approx((centre - 3, centre + 3))
    assert f"/recordings/{recording.uuid}/spectrogram.png?start={start_s:g}&amp;end={end_s:g}" in html
    box = style_of(html, f'class="event-query" data-sound-event="{event.uuid}"')
    assert box["left"] == pytest.approx(100 * (event.start_time - start_s) / 6, abs=0.01)
    assert box["width"] == pytest.approx(100 * (event.end_time - event.start_time) / 6, abs=0.01)
    assert box["bottom"] == pytest.approx(100 * event.low_freq / 16000, abs=0.01)
    assert box["height"] == pytest.approx(100 * (event.high_freq - event.low_freq) / 16000, abs=0.01)
    # From a box, clips and sound events both, most similar first.
    cards = response.context["cards"]
    assert len(cards) == 20 and {card["target"] for card in cards} == {"clip", "sound_event"}
    similarities = [card["similarity"] for card in cards]
    assert similarities == sorted(similarities, reverse=True)
    card = next(card for card in cards if card["target"] == "sound_event")
    found_event = card["sound_event"]
    link = f"/recordings/{found_event.recording.uuid}/?t={found_event.start_time:g}"
    if card["kind"] == "annotation":  # highlighted there
        link += f"&annotation={items.annotations[found_event.pk][0]}"
    assert card["recording_url"] == link
    assert link.replace("&", "&amp;") in html
    kinds = {card["kind"] for card in cards if card["target"] == "sound_event"}
    assert kinds == {"annotation", "detection"}
    card_start, card_end = card["view"]
    assert card_start <= found_event.start_time < found_event.end_time <= card_end
    assert f"spectrogram.png?start={card_start:g}&amp;end={card_end:g}" in html
    box = style_of(html, f'data-sound-event="{found_event.uuid}" data-kind="{card["kind"]}"')
    assert box["width"] == pytest.approx(
        100 * (found_event.end_time - found_event.start_time) / (card_end - card_start), abs=0.01
    )
    assert f'href="/search/?sound_event={found_event.uuid}&amp;target=both"' in html, "find similar from a result"


def test_the_page_searches_the_target_asked_for(user_client, items):
    event = items.event(1)  # a detection: no band, the box covers the whole height
    response = user_client.get(
        "/search/", {"sound_event": str(event.uuid), "target": "sound_events", "min_similarity": "-1"}
    )
    cards = response.context["cards"]
    assert len(cards) == 20 and {card["target"] for card in cards} == {"sound_event"}
    assert "20 similar sound events" in response.content.decode()
    assert (
        response.context["query"]["box"]["bottom"] == "0.00%"
        and response.context["query"]["box"]["height"] == "100.00%"
    )
    clips = user_client.get("/search/", {"sound_event": str(event.uuid), "target": "clips", "min_similarity": "-1"})
    assert {card["target"] for card in clips.context["cards"]} == {"clip"}
    assert "Label these clips" in clips.content.decode()


def test_the_page_says_why_a_box_cannot_be_searched(user_client, items):
    event = SoundEvent.objects.create(recording=items.space.recordings[0], start_time=70, end_time=71)
    response = user_client.get("/search/", {"sound_event": str(event.uuid)})
    assert response.status_code == 200 and response.context["cards"] is None
    assert "has no embedding" in response.content.decode()
    gone = user_client.get("/search/", {"sound_event": str(uuid.uuid4())})
    assert "no sound event has this UUID" in gone.content.decode()


def test_detections_of_several_species_on_one_span_are_one_result(field_recording):
    from echoroo.models import Clip

    run = ModelRun.objects.create(name="birdnet", version="same-span", embedding_dimension=4)
    tags = {value: Tag.objects.get_or_create(key=SPECIES, value=value)[0] for value in (BLACKBIRD, ROBIN, WREN)}

    def detection(start: float, species: str, score: float) -> SoundEvent:
        event = SoundEvent.objects.create(recording=field_recording, start_time=start, end_time=start + 3)
        prediction = SoundEventPrediction.objects.create(sound_event=event, model_run=run)
        SoundEventPredictionTag.objects.create(sound_event_prediction=prediction, tag=tags[species], score=score)
        return event

    clip = Clip.objects.create(recording=field_recording, start_time=0.0, end_time=3.0)
    on_clip = detection(0.0, WREN, 0.9)
    blackbird, robin = detection(6.0, BLACKBIRD, 0.8), detection(6.0, ROBIN, 0.7)
    elsewhere = detection(12.0, WREN, 0.6)
    store_embeddings("clip", np.array([clip.pk]), run.pk, np.array([[1, 0, 0, 0]], dtype=np.float32))
    vectors = {on_clip: [1, 0, 0, 0], blackbird: [1, 0.1, 0, 0], robin: [1, 0.1, 0, 0], elsewhere: [0, 1, 0, 0]}
    store_embeddings(
        "sound_event", np.array([event.pk for event in vectors]), run.pk, np.array(list(vectors.values()), np.float32)
    )

    def found(target: str) -> list[tuple]:
        results = search_similar(model_run=run, vector=[1, 0, 0, 0], target=target, min_similarity=ANY, limit=3)
        return [
            ("clip", result.clip.start_time)
            if isinstance(result, SearchResult)
            else ("event", result.sound_event.start_time, result.species)
            for result in results
        ]

    assert found("sound_events") == [
        ("event", 0.0, (WREN,)),
        ("event", 6.0, (BLACKBIRD, ROBIN)),
        ("event", 12.0, (WREN,)),
    ]
    assert found("both") == [("clip", 0.0), ("event", 0.0, (WREN,)), ("event", 6.0, (BLACKBIRD, ROBIN))]
