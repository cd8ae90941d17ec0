"""REST API of training runs (admins; the ``python -m rlhf`` commands use it): launch, watch, cancel."""

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labelstudio_site.training import selectors, services
from labelstudio_site.training.models import DatasetExport, ModelVersion, RunKind, TrainingRun
from labelstudio_site.training.paths import run_log_path


class RunProgressSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    finished = serializers.BooleanField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    percent = serializers.FloatField()
    elapsed_s = serializers.FloatField(allow_null=True)
    eta_s = serializers.FloatField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    failure_reason = serializers.CharField(allow_blank=True)
    curves = serializers.DictField(child=serializers.ListField(child=serializers.ListField()))
    log = serializers.ListField(child=serializers.CharField(allow_blank=True))
    result_version_id = serializers.IntegerField(allow_null=True)
    summary = serializers.DictField()

    class Meta:
        ref_name = "TrainingRunProgress"


def _progress(run: TrainingRun) -> dict:
    return selectors.training_run_progress(run=run, log_path=run_log_path(run))


def _bad_request(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_400_BAD_REQUEST)


class RunCreateApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=RunKind.values)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        config = serializers.DictField(required=False, default=dict)
        parent_version_id = serializers.IntegerField(required=False, allow_null=True, default=None)
        reward_version_id = serializers.IntegerField(required=False, allow_null=True, default=None)
        dataset_export_id = serializers.IntegerField(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "TrainingRunCreate"

    @extend_schema(request=InputSerializer, responses={201: RunProgressSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        versions = {}
        for field in ("parent_version_id", "reward_version_id"):
            if values[field] is not None:
                versions[field] = ModelVersion.objects.filter(pk=values[field]).first()
                if versions[field] is None:
                    return _bad_request(f"there is no model version {values[field]} ({field})")
        export = None
        if values["dataset_export_id"] is not None:
            export = DatasetExport.objects.filter(pk=values["dataset_export_id"]).first()
            if export is None:
                return _bad_request(f"there is no dataset export {values['dataset_export_id']}")
        try:
            run = services.training_run_create(
                kind=values["kind"],
                name=values["name"],
                config=values["config"],
                parent_version=versions.get("parent_version_id"),
                reward_version=versions.get("reward_version_id"),
                dataset_export=export,
                created_by=request.user if isinstance(request.user, User) else None,
            )
        except services.TrainingError as exc:
            return _bad_request(str(exc))
        return Response(RunProgressSerializer(_progress(run)).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: RunProgressSerializer})
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        return Response(RunProgressSerializer(_progress(run)).data)


class RunCancelApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={200: RunProgressSerializer, 409: None})
    def post(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(TrainingRun, pk=run_id)
        try:
            run = services.training_run_cancel(run=run)
        except services.TrainingError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(RunProgressSerializer(_progress(run)).data)
