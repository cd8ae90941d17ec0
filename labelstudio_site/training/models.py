"""Model versions: captioner adapters and reward models, with their lineage."""

from django.conf import settings
from django.db import models

from generation.config import PROFILES


class ModelKind(models.TextChoices):
    CAPTIONER = "captioner", "captioner"
    REWARD = "reward", "reward model"


class ModelVersion(models.Model):
    kind = models.CharField(max_length=16, choices=ModelKind.choices, help_text="captioner or reward model.")
    name = models.CharField(max_length=200, help_text="Human-readable name, unique per kind.")
    profile = models.CharField(
        max_length=8,
        choices=[(profile, profile) for profile in PROFILES],
        help_text="Pipeline profile the version runs under: tiny twins, the small trained models, or pretrained.",
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


class ExportKind(models.TextChoices):
    SFT = "sft", "captioner fine-tuning set"
    PREFERENCES = "preferences", "preference pairs"


class ExportStatus(models.TextChoices):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class DatasetExport(models.Model):
    """A dataset snapshot written to artifact storage: what went in (filters), what came out (counts, checksum)."""

    kind = models.CharField(max_length=16, choices=ExportKind.choices, help_text="What the rows are.")
    status = models.CharField(
        max_length=16,
        choices=ExportStatus.choices,
        default=ExportStatus.READY,
        help_text="building while a worker writes the files; ready once all are written; failed with its reason.",
    )
    error = models.TextField(blank=True, help_text="Why building failed, in a sentence.")
    name = models.CharField(max_length=200, help_text="Human-readable name.")
    options = models.JSONField(default=dict, help_text="The filters and settings the snapshot was built with.")
    counts = models.JSONField(default=dict, help_text="Rows, pairs, covers, labelers ... as written.")
    directory = models.CharField(
        max_length=500, blank=True, help_text="Folder of the files, relative to the artifact root."
    )
    files = models.JSONField(default=dict, help_text="Format -> file name inside the folder (jsonl, parquet, csv).")
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 over the files, in name order.")
    captioner_base_model_id = models.CharField(
        max_length=500, blank=True, help_text="Base model of the captioner whose outputs the rows hold."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=ExportKind.values), name="training_export_kind"),
            models.CheckConstraint(condition=models.Q(status__in=ExportStatus.values), name="training_export_status"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} export {self.name}"


class RunKind(models.TextChoices):
    SFT = "sft", "captioner fine-tuning (SFT)"
    REWARD = "reward", "reward model"
    RL = "rl", "captioner RL (GRPO)"
    EVALUATE = "evaluate", "captioner evaluation"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class TrainingRun(models.Model):
    """One launch of a training or evaluation job on the train queue, with its progress, curves and outcome."""

    kind = models.CharField(max_length=16, choices=RunKind.choices, help_text="What the run trains or measures.")
    name = models.CharField(max_length=200, help_text="Name of the model version it registers on success.")
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, help_text="Lifecycle state."
    )
    config = models.JSONField(default=dict, help_text="The algorithm's config (rlhf dataclass fields) as launched.")
    dataset_export = models.ForeignKey(
        DatasetExport,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
        help_text="The snapshot it trains on (reward runs; SFT runs write theirs when they start).",
    )
    parent_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="child_runs",
        help_text="The captioner it starts from (SFT, RL) or evaluates.",
    )
    reward_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rl_runs",
        help_text="The reward model an RL run optimises.",
    )
    result_version = models.OneToOneField(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="produced_by",
        help_text="The model version registered when the run succeeded.",
    )
    step = models.PositiveIntegerField(default=0, help_text="Optimizer steps done.")
    total_steps = models.PositiveIntegerField(default=0, help_text="Optimizer steps planned (0 until known).")
    summary = models.JSONField(default=dict, blank=True, help_text="Final metrics of the run.")
    failure_reason = models.TextField(blank=True, help_text="Why it failed, in a sentence.")
    cancel_requested = models.BooleanField(default=False, help_text="An admin asked to stop; the worker stops.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started it.")
    worker = models.CharField(max_length=200, blank=True, help_text="Host of the worker running it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from its worker.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=RunKind.values), name="training_run_kind"),
            models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="training_run_status"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="training_run_status_beat_idx")]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES


class RunPoint(models.Model):
    """One logged point of a run's curves (loss, accuracy, reward, KL ...), as the trainer reported it."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="points")
    step = models.PositiveIntegerField(help_text="Optimizer step of the log.")
    values = models.JSONField(help_text="Metric name -> value at this step.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "pk"]
        indexes = [models.Index(fields=["run", "step"], name="training_runpoint_run_step_idx")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"
