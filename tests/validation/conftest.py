"""Fixtures of the validation tests: a finished BirdNET job with detections to review."""

from __future__ import annotations

import pytest


@pytest.fixture
def job(field_dataset):
    """BirdNET at threshold 0.1 on the two field recordings, every species: 97 detections, 20 of them Wood Thrush."""
    from inference import services as jobs

    created = jobs.create_job(
        model_name="birdnet", dataset=field_dataset, config={"confidence_threshold": 0.1, "use_metadata_filter": False}
    )
    return jobs.start_job(created, sync=True)
