"""Model versions: captioner adapters and reward models, with their lineage."""

from django.conf import settings
from django.db import models


class ModelKind(models.TextChoices):
    CAPTIONER = "captioner", "captioner"
    REWARD = "reward", "reward model"


class ModelVersion(models.Model):
    kind = models.CharField(max_length=16, choices=ModelKind.choices, help_text="captioner or reward model.")
    name = models.CharField(max_length=200, help_text="Human-readable name, unique per kind.")
    profile = models.CharField(
        max_length=8,
        choices=[("tiny", "tiny"), ("full", "full")],
        help_text="Pipeline profile the version runs under: tiny twins or pretrained checkpoints.",
    )
    base_model_id = models.CharField(
        max_length=500,
        blank=True,
        help_text="Hub id or path of the base model; empty means the profile's default checkpoint.",
    )
    adapter_path = models.CharField(
        max_length=500, blank=True, help_text="Directory of the PEFT LoRA adapter; empty for the base model itself."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="The version this one was trained from.",
    )
    metrics = models.JSONField(default=dict, blank=True, help_text="Evaluation metrics recorded for the version.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who registered it (empty: the system).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="training_modelversion_unique_kind_name"),
            models.CheckConstraint(condition=models.Q(kind__in=ModelKind.values), name="training_modelversion_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"
