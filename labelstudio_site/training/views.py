"""Admin pages of training: runs (launch, watch, cancel), model versions with their evaluation, dataset exports."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labelstudio_site.studio.views import _staff_user, staff_required
from labelstudio_site.training import selectors, services
from labelstudio_site.training.exports import ExportError, export_file, preference_export_start
from labelstudio_site.training.forms import PreferenceExportForm, RunLaunchForm
from labelstudio_site.training.models import DatasetExport, ModelVersion, RunKind, TrainingRun
from labelstudio_site.training.paths import run_log_path

RUNS_PER_PAGE = 50
LAUNCHABLE: dict[str, str] = {
    RunKind.SFT: "Fine-tune a captioner (SFT)",
    RunKind.EVALUATE: "Evaluate a captioner",
    RunKind.REWARD: "Train a reward model",
    RunKind.RL: "Tune a captioner with RL (GRPO)",
}


@staff_required
@require_GET
def training_home(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.training_run_list(), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "runs": page,
        "versions": selectors.model_version_list()[:100],
        "exports": selectors.dataset_export_list()[:50],
        "launchable": LAUNCHABLE,
    }
    return render(request, "training/home.html", context)


@staff_required
@require_http_methods(["GET", "POST"])
def run_launch(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in LAUNCHABLE:
        raise Http404(f"no launch form for {kind} runs")
    initial = {"parent_version": request.GET.get("version"), "dataset_export": request.GET.get("export")}
    form = RunLaunchForm(request.POST or None, kind=kind, initial=initial)
    if request.method == "POST" and form.is_valid():
        options = form.options()
        if form.is_valid():
            try:
                run = services.training_run_create(
                    kind=kind,
                    name=form.cleaned_data.get("name", ""),
                    config=options,
                    **form.related(),
                    created_by=_staff_user(request),
                )
            except services.TrainingError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("training:run-detail", run_id=run.pk)
    context = {"form": form, "kind": kind, "title": LAUNCHABLE[kind]}
    return render(request, "training/launch.html", context, status=400 if form.errors else 200)


@staff_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("parent_version", "result_version"), pk=run_id)
    progress = selectors.training_run_progress(run=run, log_path=run_log_path(run))
    return render(request, "training/run_detail.html", {"run": run, "progress": progress})


@staff_required
@never_cache
@require_GET
def run_progress_json(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    return JsonResponse(selectors.training_run_progress(run=run, log_path=run_log_path(run)))


@staff_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    try:
        run = services.training_run_cancel(run=run)
    except services.TrainingError as exc:
        messages.error(request, str(exc))
        return redirect("training:run-detail", run_id=run.pk)
    messages.info(request, "Cancelled." if run.finished else "Asked the worker to stop at its next step.")
    return redirect("training:run-detail", run_id=run.pk)


@staff_required
@require_GET
def version_detail(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion.objects.select_related("parent"), pk=version_id)
    produced_by = TrainingRun.objects.filter(result_version=version).first()
    context = {
        "version": version,
        "produced_by": produced_by,
        "evaluation": version.metrics.get("evaluation"),
        "children": version.children.order_by("-created_at"),
        "runs": version.child_runs.order_by("-created_at")[:20],
    }
    return render(request, "training/version_detail.html", context)


@staff_required
@require_http_methods(["GET", "POST"])
def export_new(request: HttpRequest) -> HttpResponse:
    form = PreferenceExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                export = preference_export_start(
                    name=form.cleaned_data["name"], options=form.options(), created_by=_staff_user(request)
                )
                transaction.on_commit(lambda: _enqueue_export(export.pk))
        except (ExportError, ValueError) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("training:export-detail", export_id=export.pk)
    return render(request, "training/export_new.html", {"form": form}, status=400 if form.errors else 200)


def _enqueue_export(export_id: int) -> None:
    from labelstudio_site.training.tasks import preference_export_task

    preference_export_task.delay(export_id)


@staff_required
@require_GET
def export_detail(request: HttpRequest, export_id: int) -> HttpResponse:
    export = get_object_or_404(DatasetExport, pk=export_id)
    return render(request, "training/export_detail.html", {"export": export, "runs": export.runs.order_by("-pk")})


@staff_required
@require_GET
def export_download(request: HttpRequest, export_id: int, fmt: str) -> FileResponse:
    export = get_object_or_404(DatasetExport, pk=export_id)
    try:
        path = export_file(export, fmt)
    except ExportError as exc:
        raise Http404(str(exc)) from exc
    return FileResponse(path.open("rb"), as_attachment=True, filename=f"export-{export.pk}-{path.name}")
