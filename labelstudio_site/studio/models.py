"""Covers, generation rounds and their variants."""

from django.conf import settings
from django.db import models

from labelstudio_site.studio import limits
from labelstudio_site.training.models import ModelVersion


class CoverSource(models.TextChoices):
    UPLOAD = "upload", "uploaded"
    IMPORT = "import", "imported from a folder"
    CATALOG = "catalog", "catalog album"
    SEED = "seed", "seeded for a benchmark"


class Cover(models.Model):
    image = models.ImageField(upload_to="covers/", help_text="The validated image, stored under a random name.")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the file's bytes: one row per distinct image.")
    title = models.CharField(max_length=300, blank=True, help_text="Optional album title.")
    artist = models.CharField(max_length=300, blank=True, help_text="Optional artist name.")
    split = models.CharField(
        max_length=8,
        choices=[("train", "train"), ("test", "test"), ("new", "new")],
        default="new",
        help_text="Catalog split for catalog covers; new for uploads.",
    )
    source = models.CharField(max_length=8, choices=CoverSource.choices, help_text="How the cover arrived.")
    album = models.ForeignKey(
        "catalog.Album",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The catalog album, for catalog covers.",
    )
    width = models.PositiveIntegerField(help_text="Pixels.")
    height = models.PositiveIntegerField(help_text="Pixels.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["sha256"], name="studio_cover_unique_sha256")]
        # The round form's newest covers.
        indexes = [models.Index(fields=["-created_at", "-id"], name="studio_cover_newest")]

    def __str__(self) -> str:
        return self.title or f"cover {self.pk}"


class CoverEmbedding(models.Model):
    """A cover's CLIP embedding, stored when a worker first renders the cover, so that reward training and scoring
    read the vector the pipeline saw instead of recomputing it."""

    cover = models.ForeignKey(Cover, on_delete=models.CASCADE, related_name="embeddings")
    embedder_id = models.CharField(
        max_length=300, help_text="The Embedder.model_id that computed it (hub id, path or tiny twin id)."
    )
    dimension = models.PositiveIntegerField(help_text="Length of the vector.")
    vector = models.BinaryField(help_text="The unit vector as float32 little-endian bytes, 4 * dimension of them.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One vector per cover and embedder: the same weights embed the same image the same way.
            models.UniqueConstraint(fields=["cover", "embedder_id"], name="studio_coverembedding_unique_embedder"),
            models.CheckConstraint(condition=models.Q(dimension__gt=0), name="studio_coverembedding_dimension"),
        ]

    def __str__(self) -> str:
        return f"{self.embedder_id} embedding of cover {self.cover_id}"


class RoundStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class GenerationRound(models.Model):
    name = models.CharField(max_length=200, help_text="Shown to admins only.")
    covers = models.ManyToManyField(Cover, related_name="rounds", help_text="The covers to generate for.")
    captioner_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="rounds", help_text="The captioner that writes features."
    )
    comparison_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="comparison_rounds",
        help_text=(
            "Optional second captioner version on the same base model (a comparison round): every cover gets "
            "variants_per_cover variants from each version, mixed blind for the labelers, and the round page shows "
            "the newer version's win rate."
        ),
    )
    variants_per_cover = models.PositiveSmallIntegerField(
        help_text=(
            f"Variants per cover from each captioner version, one batch each: {limits.VARIANTS_HELP} "
            f"({limits.VARIANTS_PER_TASK[1]} in all at most)."
        )
    )
    seed = models.BigIntegerField(help_text="Round seed: variant i of a cover is row i of the seeded batch.")
    render_settings = models.JSONField(
        help_text="renderer, duration_s, temperature, top_k, rag, constrained (generation.pipeline.PipelineConfig)."
    )
    config_fingerprint = models.CharField(max_length=16, help_text="Hash of the full pipeline config.")
    overlap_k = models.PositiveSmallIntegerField(default=3, help_text="Distinct labelers per label task.")
    gold_rate = models.FloatField(
        default=0.0, help_text="Share of next-task answers that are gold tasks (known answer) the labeler has not done."
    )
    status = models.CharField(
        max_length=8,
        choices=RoundStatus.choices,
        default=RoundStatus.QUEUED,
        help_text="queued until a worker starts, running, then done (or failed when any variant failed).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(variants_per_cover__gte=1, variants_per_cover__lte=16),
                name="studio_round_variants_range",
            ),
            models.CheckConstraint(condition=models.Q(overlap_k__gte=1), name="studio_round_overlap_positive"),
            models.CheckConstraint(
                condition=models.Q(comparison_version__isnull=True)
                | ~models.Q(comparison_version=models.F("captioner_version")),
                name="studio_round_comparison_other_version",
            ),
            models.CheckConstraint(
                condition=models.Q(comparison_version__isnull=True) | models.Q(variants_per_cover__lte=8),
                name="studio_round_comparison_variants_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class VariantStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Variant(models.Model):
    round = models.ForeignKey(GenerationRound, on_delete=models.CASCADE, related_name="variants")
    cover = models.ForeignKey(Cover, on_delete=models.PROTECT, related_name="variants")
    captioner_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="variants")
    index = models.PositiveSmallIntegerField(help_text="Row in the cover's batch.")
    seed = models.BigIntegerField(help_text="The round seed the batch was drawn with.")
    status = models.CharField(max_length=8, choices=VariantStatus.choices, default=VariantStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started this variant's batch.")
    worker = models.CharField(max_length=200, blank=True, help_text="Host name of the worker that ran it last.")
    neighbours = models.JSONField(default=list, blank=True, help_text="Retrieved catalog albums, nearest first.")
    raw_text = models.TextField(blank=True, help_text="The captioner's output, verbatim.")
    features = models.JSONField(null=True, blank=True, help_text="The parsed and validated features.")
    prompt = models.TextField(blank=True, help_text="The music prompt made from the features.")
    audio = models.FileField(upload_to="audio/", blank=True, help_text="Rendered audio under a random name.")
    audio_mime = models.CharField(max_length=32, blank=True)
    peaks = models.JSONField(default=list, blank=True, help_text="Waveform peaks 0-1 for the player.")
    duration_s = models.FloatField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage for the cover's batch.")
    error = models.TextField(blank=True, help_text="Why the variant failed, in one sentence.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["round", "cover", "captioner_version", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["round", "cover", "captioner_version", "index"], name="studio_variant_natural_key"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=VariantStatus.values), name="studio_variant_status_valid"
            ),
        ]
        indexes = [
            # Status counts of a round (index-only) and the first start / last finish of its done variants.
            models.Index(fields=["round", "status", "started_at"], name="studio_variant_round_started"),
            models.Index(fields=["round", "status", "finished_at"], name="studio_variant_round_finished"),
            models.Index(fields=["status", "started_at"], name="studio_variant_stale"),
        ]

    def __str__(self) -> str:
        return f"variant {self.index} of cover {self.cover_id} in round {self.round_id}"


class LabelTask(models.Model):
    """One cover of a round, to be labeled by ``round.overlap_k`` distinct labelers."""

    round = models.ForeignKey(GenerationRound, on_delete=models.CASCADE, related_name="label_tasks")
    cover = models.ForeignKey(Cover, on_delete=models.PROTECT, related_name="label_tasks")
    ready = models.BooleanField(default=False, help_text="Every variant of the cover is rendered: labelers may get it.")
    active_count = models.PositiveSmallIntegerField(
        default=0,
        help_text="Assignments that are open (not expired) or submitted; kept in the transaction that changes them.",
    )
    gold_ranking = models.JSONField(
        null=True,
        blank=True,
        help_text="Known answer: the variant ids best first. A gold task goes to every labeler, outside overlap k.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["round", "cover"], name="studio_labeltask_unique_round_cover")]
        indexes = [
            # The next-task query: ready tasks with the fewest active assignments first.
            models.Index(fields=["ready", "active_count", "id"], name="studio_labeltask_next"),
            # Gold tasks (a small share), in id order, for next-task and for the agreement page's gold scores.
            models.Index(fields=["id"], condition=models.Q(gold_ranking__isnull=False), name="studio_labeltask_gold"),
        ]

    def __str__(self) -> str:
        return f"label task {self.pk} (round {self.round_id}, cover {self.cover_id})"


class AssignmentStatus(models.TextChoices):
    ASSIGNED = "assigned"
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXPIRED = "expired"


class Assignment(models.Model):
    """A label task given to one labeler, with the variants in an order drawn for this assignment alone."""

    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.ASSIGNED)
    order = models.JSONField(help_text="Variant ids in the order this labeler sees them (keys a, b, c, ...).")
    expires_at = models.DateTimeField(help_text="An assignment not submitted by then returns its slot to the pool.")
    skip_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # Never the same task twice to one labeler.
            models.UniqueConstraint(fields=["task", "labeler"], name="studio_assignment_unique_task_labeler"),
            models.CheckConstraint(
                condition=models.Q(status__in=AssignmentStatus.values), name="studio_assignment_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["labeler", "status"], name="studio_assignment_labeler"),
            models.Index(fields=["status", "expires_at"], name="studio_assignment_expiry"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} of task {self.task_id} to labeler {self.labeler_id}"


class Rating(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ratings")
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="ratings")
    musicality = models.PositiveSmallIntegerField(help_text="1-5: is it good music?")
    compatibility = models.PositiveSmallIntegerField(help_text="1-5: does it fit the cover?")
    listened_s = models.FloatField(help_text="Seconds the labeler listened before rating, as the page measured.")
    rank = models.PositiveSmallIntegerField(help_text="Place in the labeler's ranking of the variants, 1 = best.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["assignment", "variant"], name="studio_rating_unique_variant"),
            models.UniqueConstraint(fields=["assignment", "rank"], name="studio_rating_unique_rank"),
            models.CheckConstraint(condition=models.Q(musicality__gte=1, musicality__lte=5), name="studio_rating_m"),
            models.CheckConstraint(
                condition=models.Q(compatibility__gte=1, compatibility__lte=5), name="studio_rating_c"
            ),
            models.CheckConstraint(condition=models.Q(rank__gte=1), name="studio_rating_rank_positive"),
        ]

    def __str__(self) -> str:
        return f"rating of variant {self.variant_id} in assignment {self.assignment_id}"


class LabelerExclusion(models.Model):
    """A labeler whose answers an admin excluded from agreement consensus and from preference exports."""

    labeler = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exclusion")
    reason = models.CharField(max_length=300, blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"exclusion of labeler {self.labeler_id}"


# --- Running sums behind the agreement figures --------------------------------------------------------------------
# Kept in the transaction that changes the answers they sum (studio.agreement_sums), so that the agreement of a round
# with a million ratings is read from a few hundred rows. All integers: the figures are exact fractions of them.


class AgreementAxis(models.TextChoices):
    MUSICALITY = "musicality"
    COMPATIBILITY = "compatibility"


class AgreementPairs(models.Model):
    """Krippendorff's coincidences of a round's counted ratings on one axis, summed over units with ``raters``."""

    round = models.ForeignKey(GenerationRound, on_delete=models.CASCADE, related_name="+")
    axis = models.CharField(max_length=16, choices=AgreementAxis.choices)
    raters = models.PositiveIntegerField(help_text="Counted (not excluded) labelers who rated the unit (variant).")
    low = models.PositiveSmallIntegerField(help_text="The smaller value c of the pair, 1-5.")
    high = models.PositiveSmallIntegerField(help_text="The larger value k of the pair, 1-5 (c = k on the diagonal).")
    pairs = models.BigIntegerField(
        default=0, help_text="Sum over the units of n_c * n_k, or n_c * (n_c - 1) when c = k: o[c, k] * (raters - 1)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "axis", "raters", "low", "high"], name="studio_agreementpairs_key")
        ]

    def __str__(self) -> str:
        return f"{self.axis} pairs {self.low}-{self.high} of round {self.round_id} at {self.raters} raters"


class AgreementTasks(models.Model):
    """Kendall's W inputs of a round: label tasks with ``raters`` counted rankings of ``items`` variants."""

    round = models.ForeignKey(GenerationRound, on_delete=models.CASCADE, related_name="+")
    raters = models.PositiveIntegerField(help_text="Counted labelers who ranked the task (m).")
    items = models.PositiveIntegerField(help_text="Variants they ranked (n).")
    tasks = models.BigIntegerField(default=0, help_text="Tasks with this m and n.")
    spread = models.BigIntegerField(
        default=0, help_text="Sum over the tasks of n * S, S = sum of squared deviations of the variants' rank sums."
    )
    ratings = models.BigIntegerField(default=0, help_text="Counted ratings of these tasks.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "raters", "items"], name="studio_agreementtasks_key")]

    def __str__(self) -> str:
        return f"tasks of round {self.round_id} with {self.raters} raters of {self.items} items"


class AgreementConsensus(models.Model):
    """One labeler's ratings on one axis next to the sum of the other counted labelers' ratings of the same variants.

    Grouped by ``others`` (how many other labelers): the consensus of a rating is ``others_sum / others``.
    """

    round = models.ForeignKey(GenerationRound, on_delete=models.CASCADE, related_name="+")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    axis = models.CharField(max_length=16, choices=AgreementAxis.choices)
    others = models.PositiveIntegerField(help_text="Other counted labelers on each of these variants (at least 1).")
    ratings = models.BigIntegerField(default=0, help_text="The labeler's ratings with this many others.")
    own_sum = models.BigIntegerField(default=0, help_text="Sum of the labeler's values x.")
    own_squares = models.BigIntegerField(default=0, help_text="Sum of x squared.")
    others_sum = models.BigIntegerField(default=0, help_text="Sum over the ratings of o, the others' values summed.")
    others_squares = models.BigIntegerField(default=0, help_text="Sum of o squared.")
    products = models.BigIntegerField(default=0, help_text="Sum of x * o.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "labeler", "axis", "others"], name="studio_agreementconsensus_key")
        ]

    def __str__(self) -> str:
        return f"{self.axis} consensus of labeler {self.labeler_id} in round {self.round_id} ({self.others} others)"


class AgreementLabeler(models.Model):
    """A labeler's submitted assignments in a round."""

    round = models.ForeignKey(GenerationRound, on_delete=models.CASCADE, related_name="+")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    submitted = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "labeler"], name="studio_agreementlabeler_key")]

    def __str__(self) -> str:
        return f"labeler {self.labeler_id} in round {self.round_id}"
