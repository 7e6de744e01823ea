"""URL routes of the HTML pages and of what they load (audio, spectrograms, progress), all behind login."""

from django.contrib.auth import views as auth_views
from django.urls import path

from echoroo import media, pages
from inference import pages as job_pages
from search import pages as search_pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="pages/login.html", next_page="home"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("jobs/", job_pages.job_list, name="jobs"),
    path("jobs/new/", job_pages.new_job, name="job-new"),
    path("jobs/progress.json", job_pages.job_progress, name="job-progress"),
    path("jobs/<uuid:job_uuid>/", job_pages.job_page, name="job"),
    path("jobs/<uuid:job_uuid>/start/", job_pages.start_job, name="job-start"),
    path("jobs/<uuid:job_uuid>/cancel/", job_pages.cancel_job, name="job-cancel"),
    path("jobs/<uuid:job_uuid>/retry/", job_pages.retry_job, name="job-retry"),
    path("recordings/<uuid:recording_uuid>/", pages.recording_page, name="recording"),
    path("recordings/<uuid:uuid>/spectrogram.png", media.recording_spectrogram, name="recording-spectrogram"),
    path("clips/<uuid:uuid>/audio.wav", media.clip_audio, name="clip-audio"),
    path("clips/<uuid:uuid>/spectrogram.png", media.clip_spectrogram, name="clip-spectrogram"),
    path("search/", search_pages.search_page, name="search"),
]
