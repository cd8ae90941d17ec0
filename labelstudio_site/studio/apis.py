"""REST API of generation rounds (admins): one class per use case, input and output serializers of its own."""

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.config import RENDERERS
from labelstudio_site.studio import limits, selectors, services
from labelstudio_site.studio.models import Cover, GenerationRound, LabelTask
from labelstudio_site.training.models import ModelKind, ModelVersion


def _captioner_version(version_id: int) -> ModelVersion:
    version = ModelVersion.objects.filter(pk=version_id, kind=ModelKind.CAPTIONER).first()
    if version is None:
        raise serializers.ValidationError(f"there is no captioner version {version_id}")
    return version


class RoundCreateApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        cover_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
        captioner_version_id = serializers.IntegerField()
        comparison_version_id = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="A second captioner version on the same base model: a comparison round.",
        )
        variants_per_cover = serializers.IntegerField(
            min_value=limits.VARIANTS_PER_TASK[0],
            max_value=limits.VARIANTS_PER_TASK[1],
            default=4,
            help_text=f"From each version: {limits.VARIANTS_HELP}.",
        )
        seed = serializers.IntegerField(required=False, min_value=limits.SEED[0], max_value=limits.SEED[1])
        renderer = serializers.ChoiceField(choices=RENDERERS, default="synth")
        duration_s = serializers.FloatField(
            min_value=limits.DURATION_S[0], max_value=limits.DURATION_S[1], default=10.0
        )
        overlap_k = serializers.IntegerField(min_value=limits.OVERLAP_K[0], max_value=limits.OVERLAP_K[1], default=3)
        gold_rate = serializers.FloatField(min_value=limits.GOLD_RATE[0], max_value=limits.GOLD_RATE[1], default=0.0)

        def validate_cover_ids(self, value: list[int]) -> list[Cover]:
            covers = list(Cover.objects.filter(pk__in=value).order_by("pk"))
            missing = sorted(set(value) - {cover.pk for cover in covers})
            if missing:
                raise serializers.ValidationError(f"unknown cover ids: {', '.join(map(str, missing))}")
            return covers

        def validate_captioner_version_id(self, value: int) -> ModelVersion:
            return _captioner_version(value)

        def validate_comparison_version_id(self, value: int | None) -> ModelVersion | None:
            return None if value is None else _captioner_version(value)

    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = GenerationRound
            fields = [
                "id",
                "name",
                "status",
                "seed",
                "captioner_version",
                "comparison_version",
                "variants_per_cover",
                "overlap_k",
                "config_fingerprint",
            ]
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
                comparison_version=values["comparison_version_id"],
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
    """A round's progress and, for a comparison round, the newer captioner version's win rate (null otherwise)."""

    permission_classes = [IsAdminUser]

    class OutputSerializer(serializers.Serializer):
        class ComparisonSerializer(serializers.Serializer):
            class VersionSerializer(serializers.Serializer):
                id = serializers.IntegerField()
                name = serializers.CharField()

                class Meta:
                    ref_name = "ComparedVersion"

            class WinRateSerializer(serializers.Serializer):
                win_rate = serializers.FloatField(allow_null=True, help_text="Wins / comparisons; ties count half.")
                ci_low = serializers.FloatField(allow_null=True)
                ci_high = serializers.FloatField(allow_null=True)
                covers = serializers.IntegerField()
                comparisons = serializers.IntegerField(help_text="(newer, older) variant pairs within one answer.")

                class Meta:
                    ref_name = "WinRate"

            newer = VersionSerializer(help_text="The version created later.")
            older = VersionSerializer()
            answers = serializers.IntegerField(help_text="Submitted answers counted (excluded labelers left out).")
            confidence = serializers.FloatField()
            resamples = serializers.IntegerField(help_text="Bootstrap resamples of covers.")
            ranking = WinRateSerializer(help_text="The newer variant ranked better.")
            musicality = WinRateSerializer(help_text="The newer variant rated higher on musicality.")
            compatibility = WinRateSerializer(help_text="The newer variant rated higher on compatibility.")

            class Meta:
                ref_name = "RoundComparison"

        status = serializers.CharField()
        total = serializers.IntegerField()
        queued = serializers.IntegerField()
        running = serializers.IntegerField()
        done = serializers.IntegerField()
        failed = serializers.IntegerField()
        per_minute = serializers.FloatField(allow_null=True)
        comparison = ComparisonSerializer(allow_null=True)

        class Meta:
            ref_name = "RoundProgress"

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request, round_id: int) -> Response:
        generation_round = get_object_or_404(GenerationRound, pk=round_id)
        progress = selectors.round_progress(generation_round=generation_round)
        comparison = selectors.round_comparison(generation_round=generation_round)
        return Response(self.OutputSerializer({**progress, "comparison": comparison}).data)


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
