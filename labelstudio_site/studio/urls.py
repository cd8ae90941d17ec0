"""URLs of the studio's admin pages (staff only), mounted under /studio/admin/."""

from django.urls import path

from labelstudio_site.studio import views

app_name = "studio"

urlpatterns = [
    path("covers/upload/", views.covers_upload, name="covers-upload"),
    path("covers/import-catalog/", views.covers_import_catalog, name="covers-import-catalog"),
    path("rounds/", views.rounds, name="rounds"),
    path("rounds/<int:round_id>/", views.round_detail, name="round-detail"),
    path("rounds/<int:round_id>/progress.json", views.round_progress_json, name="round-progress"),
    path("rounds/<int:round_id>/retry/", views.round_retry, name="round-retry"),
    path("rounds/<int:round_id>/agreement/", views.round_agreement, name="round-agreement"),
    path(
        "rounds/<int:round_id>/labelers/<int:labeler_id>/exclusion/",
        views.labeler_exclusion,
        name="labeler-exclusion",
    ),
]
