"""REST API for admins that drive simulated labelers (``python -m rlhf simulate``): labeler accounts in bulk, and
the hidden truth behind an assignment's blind keys. Staff only; labelers get 403 on both."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labelstudio_site.studio import labeler_selectors, labeler_services
from labelstudio_site.studio.services import LabelingError

# Django's own username rule (UnicodeUsernameValidator) and length.
_USERNAME = r"^[\w.@+-]+\Z"


class LabelersCreateApi(APIView):
    """Create labeler accounts with API tokens: ``count`` new ones named ``<prefix>-<random>-<i>``, or ``usernames``."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        count = serializers.IntegerField(
            required=False, min_value=1, max_value=labeler_services.MAX_LABELERS_PER_CALL, help_text="New accounts."
        )
        usernames = serializers.ListField(
            child=serializers.RegexField(_USERNAME, max_length=150),
            required=False,
            allow_empty=False,
            max_length=labeler_services.MAX_LABELERS_PER_CALL,
            help_text="Or exactly these accounts.",
        )
        prefix = serializers.RegexField(r"^[\w.@+-]{1,100}\Z", required=False, default="sim")

        class Meta:
            ref_name = "LabelersCreate"

    class OutputSerializer(serializers.Serializer):
        class LabelerSerializer(serializers.Serializer):
            username = serializers.CharField()
            password = serializers.CharField()
            token = serializers.CharField()

            class Meta:
                ref_name = "LabelerCredentials"

        labelers = LabelerSerializer(many=True)

        class Meta:
            ref_name = "LabelersCreated"

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            labelers = labeler_services.labelers_create(
                count=values.get("count"), usernames=values.get("usernames"), prefix=values["prefix"]
            )
        except LabelingError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response(self.OutputSerializer({"labelers": labelers}).data, status=status.HTTP_201_CREATED)


class AssignmentRevealApi(APIView):
    """What is behind each blind key of an assignment: variant id and parsed features (the simulator's truth)."""

    permission_classes = [IsAdminUser]

    class OutputSerializer(serializers.Serializer):
        class VariantSerializer(serializers.Serializer):
            key = serializers.CharField()
            variant_id = serializers.IntegerField()
            index = serializers.IntegerField()
            features = serializers.DictField(allow_null=True)
            duration_s = serializers.FloatField(allow_null=True)

            class Meta:
                ref_name = "RevealedVariant"

        assignment_id = serializers.IntegerField()
        task_id = serializers.IntegerField()
        round_id = serializers.IntegerField()
        cover_id = serializers.IntegerField()
        labeler = serializers.CharField()
        status = serializers.CharField()
        variants = VariantSerializer(many=True)

        class Meta:
            ref_name = "AssignmentReveal"

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = labeler_selectors.assignment_for_reveal(assignment_id=assignment_id)
        if assignment is None:
            raise Http404(f"there is no assignment {assignment_id}")
        return Response(self.OutputSerializer(labeler_selectors.assignment_reveal(assignment=assignment)).data)
