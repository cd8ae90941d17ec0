"""REST API for labelers: next task, submit, skip, progress. Blind: variants are named a, b, c, ... in an order
drawn per assignment, and their audio lives under random names."""

from django.conf import settings
from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labelstudio_site.studio import selectors, services
from labelstudio_site.studio.roles import is_labeler


class IsLabeler(BasePermission):
    message = "only labelers may do this"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_labeler(request.user)


def _labeler(request: Request) -> User:
    assert isinstance(request.user, User)  # IsLabeler let only signed-in users through
    return request.user


class AssignmentOutputSerializer(serializers.Serializer):
    class VariantSerializer(serializers.Serializer):
        key = serializers.CharField()
        audio_url = serializers.CharField()
        duration_s = serializers.FloatField(allow_null=True)
        peaks = serializers.ListField(child=serializers.FloatField())

        class Meta:
            ref_name = "LabelVariant"

    assignment_id = serializers.IntegerField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    cover_url = serializers.CharField()
    variants = VariantSerializer(many=True)
    min_listen_s = serializers.FloatField()

    class Meta:
        ref_name = "LabelAssignment"


class NextTaskApi(APIView):
    permission_classes = [IsLabeler]

    @extend_schema(request=None, responses={200: AssignmentOutputSerializer, 204: None})
    def post(self, request: Request) -> Response:
        assignment = services.assignment_next_for(labeler=_labeler(request), ttl_s=settings.LABEL_ASSIGNMENT_TTL_S)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        view = selectors.assignment_view(assignment=assignment, min_listen_s=settings.LABEL_MIN_LISTEN_S)
        return Response(AssignmentOutputSerializer(view).data)


class SubmitApi(APIView):
    permission_classes = [IsLabeler]

    class InputSerializer(serializers.Serializer):
        class AnswerSerializer(serializers.Serializer):
            musicality = serializers.IntegerField(min_value=1, max_value=5)
            compatibility = serializers.IntegerField(min_value=1, max_value=5)
            listened_s = serializers.FloatField(min_value=0)

        ratings = serializers.DictField(child=AnswerSerializer(), allow_empty=False)
        ranking = serializers.ListField(child=serializers.CharField(max_length=2), allow_empty=False)

        class Meta:
            ref_name = "LabelSubmission"

    class OutputSerializer(serializers.Serializer):
        assignment_id = serializers.IntegerField(source="pk")
        status = serializers.CharField()

        class Meta:
            ref_name = "LabelSubmitted"

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request: Request, assignment_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answers = {key: services.VariantAnswer(**value) for key, value in data.validated_data["ratings"].items()}
        try:
            assignment = services.assignment_submit(
                assignment_id=assignment_id,
                labeler=_labeler(request),
                answers=answers,
                ranking=data.validated_data["ranking"],
                min_listen_s=settings.LABEL_MIN_LISTEN_S,
            )
        except services.LabelingError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response(self.OutputSerializer(assignment).data)


class SkipApi(APIView):
    permission_classes = [IsLabeler]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=300)

        class Meta:
            ref_name = "LabelSkip"

    @extend_schema(request=InputSerializer, responses={200: SubmitApi.OutputSerializer})
    def post(self, request: Request, assignment_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            assignment = services.assignment_skip(
                assignment_id=assignment_id, labeler=_labeler(request), reason=data.validated_data["reason"]
            )
        except services.LabelingError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response(SubmitApi.OutputSerializer(assignment).data)


class ProgressApi(APIView):
    permission_classes = [IsLabeler]

    class OutputSerializer(serializers.Serializer):
        submitted = serializers.IntegerField()
        skipped = serializers.IntegerField()
        open = serializers.IntegerField()

        class Meta:
            ref_name = "LabelProgress"

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(selectors.labeler_progress(labeler=_labeler(request))).data)
