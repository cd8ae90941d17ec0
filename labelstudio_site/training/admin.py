from django.contrib import admin

from labelstudio_site.training.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "profile", "base_model_id", "adapter_path", "parent", "created_at"]
    list_filter = ["kind", "profile"]
    search_fields = ["name", "base_model_id", "adapter_path"]
    readonly_fields = ["created_at"]
