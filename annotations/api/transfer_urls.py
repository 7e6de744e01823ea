"""Routes of the annotation import and export, under /api/v1/ (before the annotations' router, whose detail route
would otherwise take "import" and "export" for an annotation's UUID)."""

from django.urls import path

from annotations.api import transfer

urlpatterns = [
    path(
        "sound-event-annotations/import/",
        transfer.AnnotationImportView.as_view(),
        name="sound-event-annotation-import",
    ),
    path(
        "sound-event-annotations/export/",
        transfer.AnnotationExportView.as_view(),
        name="sound-event-annotation-export",
    ),
]
