from django.contrib import admin

from labelstudio_site.studio.models import Cover, GenerationRound, Variant


@admin.register(Cover)
class CoverAdmin(admin.ModelAdmin):
    list_display = ["pk", "title", "artist", "source", "split", "width", "height", "created_at"]
    list_filter = ["source", "split"]
    search_fields = ["title", "artist", "sha256"]
    readonly_fields = ["sha256", "width", "height", "created_at"]


@admin.register(GenerationRound)
class GenerationRoundAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "name",
        "status",
        "captioner_version",
        "comparison_version",
        "variants_per_cover",
        "seed",
        "created_at",
    ]
    list_filter = ["status"]
    readonly_fields = ["config_fingerprint", "created_at", "finished_at"]


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = ["pk", "round", "cover", "captioner_version", "index", "status", "attempts", "worker", "finished_at"]
    list_filter = ["status", "round"]
    readonly_fields = [field.name for field in Variant._meta.fields]
