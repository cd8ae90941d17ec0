"""URLs of the training admin pages (staff only), mounted under /studio/admin/training/."""

from django.urls import path

from labelstudio_site.training import views

app_name = "training"

urlpatterns = [
    path("", views.training_home, name="home"),
    path("launch/<str:kind>/", views.run_launch, name="run-launch"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/progress.json", views.run_progress_json, name="run-progress"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("versions/<int:version_id>/", views.version_detail, name="version-detail"),
    path("exports/new/", views.export_new, name="export-new"),
    path("exports/<int:export_id>/", views.export_detail, name="export-detail"),
    path("exports/<int:export_id>/<str:fmt>/", views.export_download, name="export-download"),
]
