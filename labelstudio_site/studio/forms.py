"""Input forms of the studio's admin pages: they validate fields; the services decide what is allowed."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from generation.images import MAX_COVER_BYTES
from labelstudio_site.studio import limits, selectors

# Django refuses a request with more files than DATA_UPLOAD_MAX_NUMBER_FILES (default 100) before the view runs;
# more covers than that belong to the import_covers command.
MAX_UPLOAD_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES or 100


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files (Django's documented recipe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class CoverUploadForm(forms.Form):
    images = MultipleFileField(
        label="Cover images", help_text=f"Any number of images, up to {MAX_COVER_BYTES // 2**20} MB each."
    )

    def clean_images(self) -> list[UploadedFile]:
        files = self.cleaned_data["images"]
        if len(files) > MAX_UPLOAD_FILES:
            raise forms.ValidationError(f"at most {MAX_UPLOAD_FILES} files per upload; use import_covers for more")
        return files


class RoundCreateForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Optional; default: the date and time.")
    all_covers = forms.BooleanField(required=False, label="All stored covers")
    covers = forms.ModelMultipleChoiceField(
        queryset=selectors.cover_list(), required=False, widget=forms.CheckboxSelectMultiple
    )
    captioner_version = forms.ModelChoiceField(queryset=selectors.captioner_version_list(), empty_label=None)
    comparison_version = forms.ModelChoiceField(
        queryset=selectors.captioner_version_list(),
        required=False,
        empty_label="none",
        label="Compare with version",
        help_text=(
            "Optional: a second captioner version on the same base model. Each cover then gets the variants per "
            f"cover from both versions ({limits.COMPARISON_VARIANTS_PER_COVER[1]} each at most), mixed blind for "
            "labelers; the round page shows the newer version's win rate."
        ),
    )
    variants_per_cover = forms.IntegerField(
        min_value=limits.VARIANTS_PER_TASK[0],
        max_value=limits.VARIANTS_PER_TASK[1],
        initial=4,
        help_text=f"From each version: {limits.VARIANTS_HELP}.",
    )
    seed = forms.IntegerField(
        required=False, min_value=limits.SEED[0], max_value=limits.SEED[1], help_text="Empty: a random seed."
    )
    audio_renderer = forms.ChoiceField(
        label="Renderer", choices=[("synth", "synth (procedural)"), ("musicgen", "MusicGen")]
    )
    duration_s = forms.FloatField(
        label="Duration (seconds)", min_value=limits.DURATION_S[0], max_value=limits.DURATION_S[1], initial=10.0
    )
    overlap_k = forms.IntegerField(
        label="Overlap k (labelers per task)", min_value=limits.OVERLAP_K[0], max_value=limits.OVERLAP_K[1], initial=3
    )
    gold_rate = forms.FloatField(
        label="Gold rate",
        required=False,
        min_value=limits.GOLD_RATE[0],
        max_value=limits.GOLD_RATE[1],
        initial=0.0,
        help_text="0-1: the share of a labeler's next tasks that are this round's gold tasks; empty: 0.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Fresh querysets per request: covers and versions change between requests.
        self.fields["covers"].queryset = selectors.cover_list()  # type: ignore[attr-defined]
        self.fields["captioner_version"].queryset = selectors.captioner_version_list()  # type: ignore[attr-defined]
        self.fields["comparison_version"].queryset = selectors.captioner_version_list()  # type: ignore[attr-defined]

    def selected_covers(self) -> list:
        """The covers the round is for (all stored ones when ``all_covers`` is ticked)."""
        if self.cleaned_data.get("all_covers"):
            return list(selectors.cover_list())
        return list(self.cleaned_data.get("covers") or [])
