from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from generation.config import OFFLINE_PROFILES
from labelstudio_site.core.selectors import health_report, platform_version
from labelstudio_site.studio.roles import is_labeler


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    context = {
        "version": platform_version(),
        "offline_profile": settings.ALBUMGEN_PROFILE if settings.ALBUMGEN_PROFILE in OFFLINE_PROFILES else None,
        "is_labeler": is_labeler(request.user),
    }
    return render(request, "core/landing.html", context)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker and at least one worker; 200 when all are up, 503 otherwise."""
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@never_cache
@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    """The web process answers; for container health checks that must not depend on workers."""
    return JsonResponse({"status": "ok", "version": platform_version()})
