"""The studio's admin pages: cover upload, rounds, the live round page, and media for staff."""

import mimetypes
import re
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils._os import safe_join
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from generation.images import MAX_COVER_BYTES
from labelstudio_site.studio import selectors, services
from labelstudio_site.studio.forms import CoverUploadForm, RoundCreateForm
from labelstudio_site.studio.models import CoverSource, GenerationRound
from labelstudio_site.studio.roles import is_labeler
from labelstudio_site.training.services import model_version_base_ensure

# Page sizes: a round's page renders every variant of its covers with prompt, raw output and neighbours; 25 covers
# (100 variants) took ~200 ms to render on the 2-core box, 10 covers ~80 ms. The round form lists the newest covers.
ROUNDS_PER_PAGE = 25
COVERS_PER_PAGE = 10
FAILURES_PER_PAGE = 50
COVER_PICKS = 60


def staff_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Anonymous users go to the sign-in page; signed-in users who are not staff get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return wrapper


def staff_or_labeler_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Like staff_required, but labelers pass too (they play the audio and see the covers they label)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_staff or is_labeler(request.user)):
            raise PermissionDenied("staff and labelers only")
        return view(request, *args, **kwargs)

    return wrapper


def _staff_user(request: HttpRequest) -> User | None:
    """The signed-in admin (staff_required has turned everyone else away)."""
    return request.user if isinstance(request.user, User) else None


@staff_required
@require_http_methods(["GET", "POST"])
def covers_upload(request: HttpRequest) -> HttpResponse:
    form = CoverUploadForm(request.POST or None, request.FILES or None)
    report = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            files, too_large = [], []
            for upload in form.cleaned_data["images"]:
                name = upload.name or "unnamed"
                if upload.size is not None and upload.size > MAX_COVER_BYTES:
                    limit = MAX_COVER_BYTES // 2**20
                    too_large.append(
                        (name, f"the file is {upload.size / 1e6:.1f} MB; covers are limited to {limit} MB")
                    )
                else:
                    files.append((name, upload.read()))
            report = services.covers_intake(files=files, source=CoverSource.UPLOAD, created_by=_staff_user(request))
            report.rejected[:0] = too_large
        else:
            status = 400
    context = {"form": form, "report": report, "cover_count": selectors.cover_list().count()}
    return render(request, "studio/covers_upload.html", context, status=status)


@staff_required
@require_POST
def covers_import_catalog(request: HttpRequest) -> HttpResponse:
    report = services.covers_from_catalog(split="test")
    messages.success(
        request, f"Catalog test split: {len(report.created)} stored, {len(report.duplicates)} already stored."
    )
    return redirect("studio:covers-upload")


@staff_required
@require_http_methods(["GET", "POST"])
def rounds(request: HttpRequest) -> HttpResponse:
    model_version_base_ensure(profile=settings.ALBUMGEN_PROFILE)
    form = RoundCreateForm(request.POST or None, initial={"captioner_version": _latest_captioner()})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            generation_round = services.round_create(
                name=data["name"],
                covers=form.selected_covers(),
                captioner_version=data["captioner_version"],
                comparison_version=data["comparison_version"],
                variants_per_cover=data["variants_per_cover"],
                seed=data["seed"],
                render_settings={"renderer": data["audio_renderer"], "duration_s": data["duration_s"]},
                overlap_k=data["overlap_k"],
                gold_rate=data["gold_rate"] or 0.0,
                created_by=_staff_user(request),
            )
        except services.RoundError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("studio:round-detail", round_id=generation_round.pk)
    rounds_page = Paginator(selectors.round_list(), ROUNDS_PER_PAGE).get_page(request.GET.get("page"))
    counts = selectors.round_variant_counts(round_ids=[r.pk for r in rounds_page])
    covers = selectors.cover_list()
    context = {
        "form": form,
        "rounds_page": rounds_page,
        "round_rows": [{"round": r, **counts[r.pk]} for r in rounds_page],
        "covers": covers[:COVER_PICKS],
        "cover_count": covers.count(),
        "cover_picks": COVER_PICKS,
    }
    return render(request, "studio/rounds.html", context, status=400 if form.errors else 200)


def _latest_captioner() -> int | None:
    version = selectors.captioner_version_list().filter(profile=settings.ALBUMGEN_PROFILE).first()
    return version.pk if version else None


@staff_required
@require_GET
def round_detail(request: HttpRequest, round_id: int) -> HttpResponse:
    generation_round = get_object_or_404(
        GenerationRound.objects.select_related("captioner_version", "comparison_version"), pk=round_id
    )
    covers_page = Paginator(selectors.round_cover_ids(generation_round=generation_round), COVERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    cover_ids = list(covers_page)
    failures_page = Paginator(selectors.round_failures(generation_round=generation_round), FAILURES_PER_PAGE).get_page(
        request.GET.get("failures")
    )
    context = {
        "round": generation_round,
        "progress": selectors.round_progress(generation_round=generation_round),
        "covers_page": covers_page,
        "cover_rows": selectors.round_cover_progress(generation_round=generation_round, cover_ids=cover_ids),
        "variants": selectors.round_variants(generation_round=generation_round, cover_ids=cover_ids),
        "failures_page": failures_page,
        "covers_keep": f"failures={failures_page.number}" if failures_page.number > 1 else "",
        "failures_keep": f"page={covers_page.number}" if covers_page.number > 1 else "",
        "progress_url": f"{reverse('studio:round-progress', args=[round_id])}?page={covers_page.number}",
        "comparison": selectors.round_comparison(generation_round=generation_round),
    }
    return render(request, "studio/round_detail.html", context)


@never_cache
@staff_required
@require_GET
def round_progress_json(request: HttpRequest, round_id: int) -> JsonResponse:
    """The round's counts, and per cover those of one page of covers (``?page=``, as on the round's page)."""
    generation_round = get_object_or_404(GenerationRound, pk=round_id)
    progress = selectors.round_progress(generation_round=generation_round)
    covers_page = Paginator(selectors.round_cover_ids(generation_round=generation_round), COVERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    covers = [
        {key: row[key] for key in ("cover_id", "queued", "running", "done", "failed", "total")}
        for row in selectors.round_cover_progress(generation_round=generation_round, cover_ids=list(covers_page))
    ]
    return JsonResponse({**progress, "page": covers_page.number, "covers": covers})


@staff_required
@require_POST
def round_retry(request: HttpRequest, round_id: int) -> HttpResponse:
    generation_round = get_object_or_404(GenerationRound, pk=round_id)
    batches = services.round_retry_failed(generation_round=generation_round)
    messages.info(request, f"Requeued {len(batches)} failed batch(es).")
    return redirect("studio:round-detail", round_id=round_id)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@staff_or_labeler_required
@require_GET
def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """Files under MEDIA_ROOT, with single HTTP ranges (a browser needs them to seek and time Ogg/MP3 audio)."""
    try:
        full = Path(safe_join(settings.MEDIA_ROOT, path))
    except SuspiciousFileOperation as exc:
        raise Http404("no such file") from exc
    if not full.is_file():
        raise Http404("no such file")
    size = full.stat().st_size
    content_type = mimetypes.guess_type(full.name)[0] or "application/octet-stream"
    match = _RANGE.match(request.headers.get("Range", "").strip())
    response: HttpResponseBase
    if match is None or not any(match.groups()):
        response = FileResponse(full.open("rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return response
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # a suffix range: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    if start >= size or start > end:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    with full.open("rb") as file:
        file.seek(start)
        chunk = file.read(end - start + 1)
    response = HttpResponse(chunk, status=206, content_type=content_type)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response


@staff_required
@require_GET
def round_agreement(request: HttpRequest, round_id: int) -> HttpResponse:
    generation_round = get_object_or_404(GenerationRound, pk=round_id)
    # The exclusion URL of labeler 0 without "0/exclusion/": the template appends each labeler's id.
    labelers_url = reverse("studio:labeler-exclusion", args=[round_id, 0]).removesuffix("0/exclusion/")
    context = {
        "round": generation_round,
        "agreement": selectors.round_agreement(generation_round=generation_round),
        "labelers_url": labelers_url,
    }
    return render(request, "studio/round_agreement.html", context)


@staff_required
@require_POST
def labeler_exclusion(request: HttpRequest, round_id: int, labeler_id: int) -> HttpResponse:
    labeler = get_object_or_404(User, pk=labeler_id)
    excluded = request.POST.get("excluded") == "true"
    services.labeler_exclusion_set(
        labeler=labeler, excluded=excluded, by=_staff_user(request), reason=request.POST.get("reason", "")
    )
    verb = "Excluded" if excluded else "Included"
    messages.info(request, f"{verb} the answers of {labeler.get_username()}.")
    return redirect("studio:round-agreement", round_id=round_id)
