from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labelstudio_site.core import views as core_views
from labelstudio_site.studio import apis as studio_apis
from labelstudio_site.studio import label_views, labeling_apis, simulation_apis
from labelstudio_site.studio import views as studio_views
from labelstudio_site.training import apis as training_apis

admin.site.site_header = "AlbumGen Studio administration"
admin.site.site_title = "AlbumGen Studio"

urlpatterns = [
    path("", core_views.landing, name="landing"),
    path("healthz", core_views.healthz, name="healthz"),
    path("livez", core_views.livez, name="livez"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="core/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("studio/admin/", include("labelstudio_site.studio.urls")),
    path("studio/admin/training/", include("labelstudio_site.training.urls")),
    path("api/rounds/", studio_apis.RoundCreateApi.as_view(), name="api-round-create"),
    path("label/", label_views.label, name="label"),
    path("api/label/next/", labeling_apis.NextTaskApi.as_view(), name="api-label-next"),
    path(
        "api/label/assignments/<int:assignment_id>/submit/", labeling_apis.SubmitApi.as_view(), name="api-label-submit"
    ),
    path("api/label/assignments/<int:assignment_id>/skip/", labeling_apis.SkipApi.as_view(), name="api-label-skip"),
    path("api/label/progress/", labeling_apis.ProgressApi.as_view(), name="api-label-progress"),
    path("api/labelers/", simulation_apis.LabelersCreateApi.as_view(), name="api-labelers-create"),
    path(
        "api/label/assignments/<int:assignment_id>/reveal/",
        simulation_apis.AssignmentRevealApi.as_view(),
        name="api-label-reveal",
    ),
    path("api/rounds/<int:round_id>/", studio_apis.RoundProgressApi.as_view(), name="api-round-progress"),
    path("api/rounds/<int:round_id>/agreement/", studio_apis.RoundAgreementApi.as_view(), name="api-round-agreement"),
    path("api/label-tasks/<int:task_id>/gold/", studio_apis.LabelTaskGoldApi.as_view(), name="api-label-task-gold"),
    path("api/training-runs/", training_apis.RunCreateApi.as_view(), name="api-run-create"),
    path("api/training-runs/<int:run_id>/", training_apis.RunDetailApi.as_view(), name="api-run-detail"),
    path("api/training-runs/<int:run_id>/cancel/", training_apis.RunCancelApi.as_view(), name="api-run-cancel"),
    # Covers and audio for staff, in every configuration (django.views.static.serve is DEBUG-only and has no ranges).
    path(f"{settings.MEDIA_URL.lstrip('/')}<path:path>", studio_views.media, name="media"),
]
