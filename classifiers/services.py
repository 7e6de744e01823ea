"""The user actions on classifiers: label clips, train, apply, cancel, and find the clips to label next.

The admin, the API and the pages all call these; each checks what it is given and writes in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import numpy as np
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Count

from classifiers import labels, training
from classifiers.errors import ClassifierError
from classifiers.labels import CLEAR, LabelSet, Polarity
from classifiers.models import Classifier, ClassifierJob
from echoroo.jobs import mark_cancelled
from echoroo.models import SPECIES, Clip, ClipAnnotation, ClipAnnotationTag, ModelRun, Tag
from embeddings.models import ClipEmbedding
from embeddings.vectors import count_embeddings, embeddings_after, embeddings_of, id_range

# Clips labelled in one request at most.
MAX_CLIPS_PER_LABELLING = 1000
# The uncertain clips of a classifier not yet applied are found among this many sampled embeddings,
# read as SAMPLE_STRETCHES runs of consecutive clips from random points of the run.
UNCERTAIN_SAMPLE = 20_000
SAMPLE_STRETCHES = 20
MAX_UNCERTAIN = 200


def _lock_label(label: str) -> None:
    """Serialise the writers of one label set (labelling, numbering a new classifier) until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"classifiers.label:{label}"])


# --- Labelling ----------------------------------------------------------------------------------


def label_clips(clip_uuids: Sequence[UUID | str], *, label: str, polarity: str, by) -> LabelSet:
    """Mark clips positive or negative for a label set (or, with "clear", unmark them); returns the set's counts.

    A clip's earlier label in the set is replaced: each clip gets a new ClipAnnotation by `by`,
    now, with the one tag; an annotation left with no tags and no notes is deleted. Only its
    labeller or staff may change or clear a label (PermissionDenied, nothing written); `by` None
    is a command's labelling, unchecked.
    """
    label = labels.clean_label(label)
    if polarity not in (*Polarity.values, CLEAR):
        raise ClassifierError({"polarity": f"one of {', '.join((*Polarity.values, CLEAR))}, not {polarity!r}"})
    wanted = parse_uuids(clip_uuids)
    if not wanted:
        raise ClassifierError({"clips": "give at least one clip uuid"})
    if len(wanted) > MAX_CLIPS_PER_LABELLING:
        raise ClassifierError({"clips": f"at most {MAX_CLIPS_PER_LABELLING} clips at once, not {len(wanted)}"})
    found = dict(Clip.objects.filter(uuid__in=wanted).values_list("uuid", "id"))
    missing = [str(u) for u in wanted if u not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ClassifierError({"clips": f"no clip has the uuid {shown}"})
    clip_ids = [found[u] for u in wanted]
    user = by if by is not None and by.is_authenticated else None

    with transaction.atomic():
        _lock_label(label)
        if by is not None:
            clip_ids = _own_or_unlabelled(label, clip_ids, polarity, by, {i: u for u, i in found.items()})
        tags = labels.label_tags(label)
        earlier = ClipAnnotationTag.objects.filter(tag__in=tags.values(), clip_annotation__clip_id__in=clip_ids)
        annotation_ids = list(earlier.values_list("clip_annotation_id", flat=True))
        earlier.delete()
        ClipAnnotation.objects.filter(id__in=annotation_ids, notes="", tags__isnull=True).delete()
        if polarity != CLEAR:
            annotations = ClipAnnotation.objects.bulk_create(
                ClipAnnotation(clip_id=clip_id, created_by=user) for clip_id in clip_ids
            )
            ClipAnnotationTag.objects.bulk_create(
                ClipAnnotationTag(clip_annotation=annotation, tag=tags[polarity], created_by=user)
                for annotation in annotations
            )
    return labels.label_set(label)


def _own_or_unlabelled(label: str, clip_ids: list[int], polarity: str, by, uuid_of: dict[int, UUID]) -> list[int]:
    """The clips `by` labels: those unlabelled in the set or labelled by them (staff: all). Another's label
    given again unchanged is left theirs; changing or clearing another's label refuses the whole request."""
    if by.is_staff:
        return clip_ids
    others = {
        clip_id: current
        for clip_id, current in labels.current_labels(label, clip_ids).items()
        if not labels.may_change(current, by)
    }
    refused = [clip_id for clip_id, current in others.items() if polarity == CLEAR or current.polarity != polarity]
    if refused:
        labellers = sorted({others[clip_id].labeller or "a deleted user" for clip_id in refused})
        shown = ", ".join(str(uuid_of[clip_id]) for clip_id in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise PermissionDenied(
            f"nothing labelled: {len(refused)} of these clips {'is' if len(refused) == 1 else 'are'} labelled "
            f"{label!r} by {', '.join(labellers)} ({shown}{more}); only a label's labeller or staff may change or "
            "clear it: leave these clips out, or label them in a label set of your own"
        )
    return [clip_id for clip_id in clip_ids if clip_id not in others]


def parse_uuids(values: Sequence[UUID | str], *, field: str = "clips", what: str = "clip") -> list[UUID]:
    """The uuids given, each once, in order; a ClassifierError naming `field` for one that is not a uuid."""
    parsed = []
    for value in values:
        try:
            parsed.append(value if isinstance(value, UUID) else UUID(str(value).strip()))
        except ValueError:
            raise ClassifierError({field: f"{str(value)[:60]!r} is not a {what} uuid"}) from None
    return list(dict.fromkeys(parsed))


# --- Training -----------------------------------------------------------------------------------


def train_classifier(*, label: str, source: ModelRun | None = None, by=None) -> Classifier:
    """Train a label set's next classifier on the stored embeddings of `source` (default: the run
    holding the embeddings of most of its labelled clips), with its own classifier ModelRun."""
    label = labels.clean_label(label)
    examples = labels.labelled_clips(label)
    if not examples:
        raise ClassifierError({"label": f"no clip is labelled {label!r} yet: label some clips positive and negative"})
    source = source or _run_with_most_embeddings(list(examples))
    _check_source(source)
    batch = embeddings_of("clip", source.id, list(examples))
    positive = np.array([examples[int(clip_id)] == Polarity.POSITIVE for clip_id in batch.ids], dtype=bool)
    # Held-out figures are measured on whole recordings (classifiers.training.held_out_split).
    recording_of = dict(Clip.objects.filter(id__in=batch.ids.tolist()).values_list("id", "recording_id"))
    recordings = np.array([recording_of[int(clip_id)] for clip_id in batch.ids], dtype=np.int64)
    unembedded = len(examples) - len(batch)
    where = f" with {source} embeddings" + (
        f" ({unembedded} labelled clip{'s have' if unembedded != 1 else ' has'} none)" if unembedded else ""
    )
    try:
        trained = training.fit(batch.vectors, positive, recordings, where=where)
    except training.NotEnoughExamples as error:
        raise ClassifierError({"label": str(error)}) from error

    with transaction.atomic():
        _lock_label(label)
        latest = Classifier.objects.filter(label=label).order_by("-version").values_list("version", flat=True).first()
        version = (latest or 0) + 1
        if ModelRun.objects.filter(name=label, version=f"v{version}").exists():
            raise ClassifierError(
                {"label": f"a model run named {label!r} v{version} exists already; choose another label name"}
            )
        model_run = ModelRun.objects.create(
            name=label,
            version=f"v{version}",
            kind=ModelRun.Kind.CLASSIFIER,
            source=source,
            description=f"Logistic regression for {label!r} on {source} embeddings",
            segment_duration=source.segment_duration,
            sample_rate=source.sample_rate,
            config={"label": label, "classifier_version": version},
        )
        return Classifier.objects.create(
            label=label,
            version=version,
            source=source,
            model_run=model_run,
            coef=trained.coef.astype("<f4").tobytes(),
            intercept=trained.intercept,
            metrics=trained.metrics,
            created_by=by if by is not None and by.is_authenticated else None,
        )


def _run_with_most_embeddings(clip_ids: list[int]) -> ModelRun:
    row = (
        ClipEmbedding.objects.filter(clip_id__in=clip_ids, model_run__kind=ModelRun.Kind.MODEL)
        .values("model_run")
        .annotate(n=Count("id"))
        .order_by("-n", "model_run")
        .first()
    )
    if row is None:
        raise ClassifierError(
            {"model_run": "none of the labelled clips has a stored embedding: run a model with store_embeddings first"}
        )
    return ModelRun.objects.get(pk=row["model_run"])


def _check_source(source: ModelRun) -> None:
    if source.kind != ModelRun.Kind.MODEL:
        raise ClassifierError(
            {"model_run": f"{source} is a classifier's run, which has no embeddings: choose the model run it scores"}
        )
    if not ClipEmbedding.objects.filter(model_run=source).exists():
        raise ClassifierError({"model_run": f"{source} has no stored embeddings"})


# --- Applying -----------------------------------------------------------------------------------


def start_apply(classifier: Classifier, *, by=None, sync: bool = False) -> ClassifierJob:
    """Queue the job that scores every embedding of the classifier's source run (or run it here with `sync`)."""
    with transaction.atomic():
        Classifier.objects.select_for_update().filter(pk=classifier.pk).first()
        if classifier.jobs.filter(status__in=ClassifierJob.ACTIVE).exists():
            raise ClassifierError({"status": f"{classifier} is being applied already; cancel that job first"})
        job = ClassifierJob.objects.create(
            classifier=classifier, created_by=by if by is not None and by.is_authenticated else None
        )
        if not sync:
            transaction.on_commit(lambda: enqueue_apply(job.pk))
    if sync:
        from classifiers.applying import run_apply_job

        run_apply_job(job.pk)
    job.refresh_from_db()
    return job


def cancel_apply(job: ClassifierJob, *, by=None) -> ClassifierJob:
    """Stop an apply job between batches; the predictions stored so far stay. A finished job is a conflict (409)."""
    if by is not None and not job.can_be_changed_by(by):
        raise PermissionDenied("only staff or the job's creator may cancel it")
    with transaction.atomic():
        return mark_cancelled(job, error=ClassifierError)


def enqueue_apply(job_id: int, part: int = 1) -> None:
    """Hand the job to any django-q2 worker; a part that runs out of time queues the next one."""
    from django_q.tasks import async_task

    async_task(
        "classifiers.tasks.apply_classifier",
        job_id,
        part,
        group=f"classifier-job-{job_id}",
        task_name=f"classifier-job-{job_id}-part-{part}",
    )


# --- Active learning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UncertainClip:
    clip: Clip  # its recording, with the recording's dataset and site, loaded
    score: float


@dataclass(frozen=True)
class Uncertain:
    clips: list[UncertainClip]  # closest to 0.5 first
    scored_from: str  # "predictions" (the stored ones of a completed apply job) or "sample"
    scored: int  # the scores looked at: for "sample", the embeddings scored; for "predictions", those nearest 0.5


def uncertain_clips(classifier: Classifier, *, limit: int = 20, seed: int | None = None) -> Uncertain:
    """The clips the classifier is least sure about, not yet labelled in its label set: scores closest to 0.5.

    From its stored predictions once an apply job has completed; before that, scored here: every
    embedding of a source run of at most UNCERTAIN_SAMPLE, else a sample of about that many.
    """
    if not 1 <= limit <= MAX_UNCERTAIN:
        raise ClassifierError({"limit": f"from 1 to {MAX_UNCERTAIN}"})
    labelled = list(labels.labelled_clips(classifier.label))
    if classifier.jobs.filter(status=ClassifierJob.Status.COMPLETED).exists():
        scores, scored_from = _stored_scores_near_half(classifier, labelled, limit), "predictions"
        scored = len(scores)
    else:
        scores, scored_from = _sampled_scores(classifier, seed), "sample"
        scored = len(scores)
        for clip_id in labelled:
            scores.pop(clip_id, None)
    nearest = sorted(scores.items(), key=lambda item: (abs(item[1] - 0.5), item[0]))[:limit]
    clips = Clip.objects.select_related("recording__dataset", "recording__site").in_bulk(
        [clip_id for clip_id, _ in nearest]
    )
    return Uncertain(
        clips=[UncertainClip(clips[clip_id], score) for clip_id, score in nearest if clip_id in clips],
        scored_from=scored_from,
        scored=scored,
    )


def _stored_scores_near_half(classifier: Classifier, labelled: list[int], limit: int) -> dict[int, float]:
    """The `limit` stored scores just above 0.5 and just below: two short walks of the (tag, score) index."""
    tag_id = Tag.objects.filter(key=SPECIES, value=classifier.label).values_list("id", flat=True).first()
    if tag_id is None:
        return {}
    side = (
        "SELECT p.clip_id, t.score FROM echoroo_clippredictiontag t "
        "JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id "
        "WHERE t.tag_id = %(tag)s AND p.model_run_id = %(run)s AND NOT p.clip_id = ANY(%(labelled)s) "
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"({side} AND t.score >= 0.5 ORDER BY t.score ASC LIMIT %(limit)s) "
            f"UNION ALL ({side} AND t.score < 0.5 ORDER BY t.score DESC LIMIT %(limit)s)",
            {"tag": tag_id, "run": classifier.model_run_id, "labelled": labelled, "limit": limit},
        )
        return dict(cursor.fetchall())


def _sampled_scores(classifier: Classifier, seed: int | None) -> dict[int, float]:
    """Clip id -> score over the source run: all of it if small, else SAMPLE_STRETCHES stretches of
    consecutive clips from random points (short index walks: no scan of the whole run)."""
    source = classifier.source_id
    if count_embeddings("clip", source, at_most=UNCERTAIN_SAMPLE + 1) <= UNCERTAIN_SAMPLE:
        batches = [embeddings_after("clip", source, 0, UNCERTAIN_SAMPLE)]
    else:
        low, high = id_range("clip", source)
        stretch = UNCERTAIN_SAMPLE // SAMPLE_STRETCHES
        starts = np.sort(np.random.default_rng(seed).integers(low - 1, high, size=SAMPLE_STRETCHES))
        batches, covered = [], low - 1
        for start in starts:
            # A stretch that starts inside the previous one goes on from its end.
            batch = embeddings_after("clip", source, max(int(start), covered), stretch)
            if len(batch):
                batches.append(batch)
                covered = int(batch.ids[-1])
    scores: dict[int, float] = {}
    for batch in batches:
        values = training.sigmoid_scores(batch.vectors, classifier.weights, classifier.intercept)
        scores.update(zip(batch.ids.tolist(), values.tolist(), strict=True))
    return scores
