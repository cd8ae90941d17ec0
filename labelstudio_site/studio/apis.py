"""REST API of generation rounds (admins): one class per use case, input and output serializers of its own."""

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labelstudio_site.studio import selectors, services
from labelstudio_site.studio.models import Cover, GenerationRound, LabelTask
from labelstudio_site.training.models import ModelKind, ModelVersion


class RoundCreateApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        cover_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
        captioner_version_id = serializers.IntegerField()
        variants_per_cover = serializers.IntegerField(min_value=1, max_value=16, default=4)
        seed = serializers.IntegerField(required=False, min_value=0, max_value=2**62)
        renderer = serializers.ChoiceField(choices=("synth", "musicgen"), default="synth")
        duration_s = serializers.FloatField(min_value=0.5, max_value=60, default=10.0)
        overlap_k = serializers.IntegerField(min_value=1, max_value=50, default=3)
        gold_rate = serializers.FloatField(min_value=0, max_value=1, default=0.0)

        def validate_cover_ids(self, value: list[int]) -> list[Cover]:
            covers = list(Cover.objects.filter(pk__in=value).order_by("pk"))
            missing = sorted(set(value) - {cover.pk for cover in covers})
            if missing:
                raise serializers.ValidationError(f"unknown cover ids: {', '.join(map(str, missing))}")
            return covers

        def validate_captioner_version_id(self, value: int) -> ModelVersion:
            version = ModelVersion.objects.filter(pk=value, kind=ModelKind.CAPTIONER).first()
            if version is None:
                raise serializers.ValidationError(f"there is no captioner version {value}")
            return version

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = GenerationRound
            fields = ["id", "name", "status", "seed", "variants_per_cover", "overlap_k", "config_fingerprint"]
            ref_name = "RoundCreated"

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            generation_round = services.round_create(
                name=values["name"],
                covers=values["cover_ids"],
                captioner_version=values["captioner_version_id"],
                variants_per_cover=values["variants_per_cover"],
                seed=values.get("seed"),
                render_settings={"renderer": values["renderer"], "duration_s": values["duration_s"]},
                overlap_k=values["overlap_k"],
                gold_rate=values["gold_rate"],
                created_by=request.user if isinstance(request.user, User) else None,
            )
        except services.RoundError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.OutputSerializer(generation_round).data, status=status.HTTP_201_CREATED)


class RoundProgressApi(APIView):
    permission_classes = [IsAdminUser]

    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()
        total = serializers.IntegerField()
        queued = serializers.IntegerField()
        running = serializers.IntegerField()
        done = serializers.IntegerField()
        failed = serializers.IntegerField()
        per_minute = serializers.FloatField(allow_null=True)

        class Meta:
            ref_name = "RoundProgress"

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request, round_id: int) -> Response:
        generation_round = get_object_or_404(GenerationRound, pk=round_id)
        return Response(self.OutputSerializer(selectors.round_progress(generation_round=generation_round)).data)


class RoundAgreementApi(APIView):
    permission_classes = [IsAdminUser]

    class OutputSerializer(serializers.Serializer):
        class LabelerSerializer(serializers.Serializer):
            labeler_id = serializers.IntegerField()
            username = serializers.CharField()
            submitted = serializers.IntegerField()
            excluded = serializers.BooleanField()
            musicality_agreement = serializers.FloatField(allow_null=True)
            compatibility_agreement = serializers.FloatField(allow_null=True)
            gold_tasks = serializers.IntegerField()
            gold_agreement = serializers.FloatField(allow_null=True)

            class Meta:
                ref_name = "LabelerAgreement"

        ratings = serializers.IntegerField()
        musicality_alpha = serializers.FloatField(allow_null=True)
        compatibility_alpha = serializers.FloatField(allow_null=True)
        ranking_w = serializers.FloatField(allow_null=True)
        labelers = LabelerSerializer(many=True)

        class Meta:
            ref_name = "RoundAgreement"

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request, round_id: int) -> Response:
        generation_round = get_object_or_404(GenerationRound, pk=round_id)
        return Response(self.OutputSerializer(selectors.round_agreement(generation_round=generation_round)).data)


class LabelTaskGoldApi(APIView):
    """Mark a label task as gold with its known ranking (variant ids, best first), or clear it with null."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        ranking = serializers.ListField(child=serializers.IntegerField(), allow_null=True, allow_empty=False)

        class Meta:
            ref_name = "GoldRanking"

    @extend_schema(request=InputSerializer, responses={200: InputSerializer})
    def post(self, request: Request, task_id: int) -> Response:
        task = get_object_or_404(LabelTask, pk=task_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            task = services.label_task_gold_set(task=task, ranking=data.validated_data["ranking"])
        except services.LabelingError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response({"ranking": task.gold_ranking})
