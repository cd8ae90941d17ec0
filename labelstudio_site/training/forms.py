"""Launch forms: the common fields of a run plus one input per option of the run kind's config dataclass."""

import dataclasses
import typing
from typing import Any

from django import forms
from django.contrib.auth.models import User

from labelstudio_site.studio.models import GenerationRound
from labelstudio_site.studio.roles import LABELERS_GROUP
from labelstudio_site.training.exports import PreferenceExportOptions
from labelstudio_site.training.models import DatasetExport, ExportKind, ExportStatus, ModelKind, RunKind
from labelstudio_site.training.run_configs import config_class
from labelstudio_site.training.selectors import model_version_list
from rlhf.pairs import AGGREGATES, AXES, SOURCES, TIES


def option_fields(kind: str) -> dict[str, forms.Field]:
    """One form field per dataclass field, typed by its annotation, defaulting to its default, helped by its help."""
    cls = config_class(kind)
    hints = typing.get_type_hints(cls)
    fields: dict[str, forms.Field] = {}
    for option in dataclasses.fields(cls):
        hint = hints[option.name]
        default = option.default if option.default is not dataclasses.MISSING else None
        help_text = option.metadata.get("help", "")
        field: forms.Field
        if hint is bool:
            field = forms.BooleanField(required=False, initial=default)
        elif hint is int:
            field = forms.IntegerField(initial=default)
        elif hint is float:
            field = forms.FloatField(initial=default)
        elif typing.get_origin(hint) is tuple:
            field = forms.CharField(initial=", ".join(map(str, default or ())), help_text="comma-separated")
        elif typing.get_origin(hint) is typing.Literal:
            field = forms.ChoiceField(choices=[(value, value) for value in typing.get_args(hint)], initial=default)
        else:
            field = forms.CharField(initial=default)
        field.label = option.name.replace("_", " ")
        field.help_text = f"{help_text} {field.help_text}".strip()
        fields[f"option_{option.name}"] = field
    return fields


class RunLaunchForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Name of the model version the run registers.")

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        captioners = model_version_list(kind=ModelKind.CAPTIONER)
        if kind == RunKind.SFT:
            captioners = captioners.filter(adapter_path="")
        if kind == RunKind.REWARD:
            exports = DatasetExport.objects.filter(kind=ExportKind.PREFERENCES, status=ExportStatus.READY)
            self.fields["dataset_export"] = forms.ModelChoiceField(
                queryset=exports.order_by("-pk"), label="preference export", empty_label=None
            )
        else:
            label = "captioner version to tune" if kind == RunKind.RL else "captioner version"
            self.fields["parent_version"] = forms.ModelChoiceField(queryset=captioners, label=label, empty_label=None)
        if kind == RunKind.RL:
            self.fields["reward_version"] = forms.ModelChoiceField(
                queryset=model_version_list(kind=ModelKind.REWARD), label="reward model", empty_label=None
            )
        if kind == RunKind.EVALUATE:
            del self.fields["name"]
        self.fields.update(option_fields(kind))

    def options(self) -> dict[str, Any]:
        """The cleaned options, in the dataclass's terms (tuples from their comma-separated text)."""
        cls = config_class(self.kind)
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for option in dataclasses.fields(cls):
            value = self.cleaned_data[f"option_{option.name}"]
            if typing.get_origin(hints[option.name]) is tuple:
                try:
                    value = [int(part) for part in str(value).replace(" ", "").split(",") if part]
                except ValueError:
                    self.add_error(f"option_{option.name}", "give whole numbers separated by commas")
                    continue
            values[option.name] = value
        return values

    def related(self) -> dict[str, Any]:
        """The rows the run starts from, as ``training_run_create`` takes them."""
        names = ("parent_version", "reward_version", "dataset_export")
        return {name: self.cleaned_data[name] for name in names if name in self.cleaned_data}


class PreferenceExportForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Default: the source and axis.")
    rounds = forms.ModelMultipleChoiceField(
        queryset=GenerationRound.objects.order_by("-pk"), required=False, help_text="None selected: every round."
    )
    source = forms.ChoiceField(choices=[(s, s) for s in SOURCES], initial="ranking")
    axis = forms.ChoiceField(
        choices=[(a, a) for a in AXES], initial="combined", help_text="For pairs from ratings (combined = the mean)."
    )
    min_margin = forms.FloatField(initial=1.0, min_value=0, help_text="Smallest rating (or mean-rank) difference.")
    ties = forms.ChoiceField(choices=[(t, t) for t in TIES], initial="drop", help_text="keep: both orders, margin 0.")
    aggregate = forms.ChoiceField(
        choices=[(a, a) for a in AGGREGATES], initial="none", help_text="none: a pair per labeler; mean: over labelers."
    )
    exclude_labelers = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(groups__name=LABELERS_GROUP).order_by("username"),
        required=False,
        help_text="Besides those excluded on the agreement pages.",
    )
    min_gold_agreement = forms.FloatField(
        required=False, min_value=-1, max_value=1, help_text="Leave out labelers below this rank correlation with gold."
    )

    def options(self) -> PreferenceExportOptions:
        data = self.cleaned_data
        return PreferenceExportOptions(
            source=data["source"],
            axis=data["axis"],
            min_margin=data["min_margin"],
            ties=data["ties"],
            aggregate=data["aggregate"],
            round_ids=[r.pk for r in data["rounds"]],
            exclude_labeler_ids=[u.pk for u in data["exclude_labelers"]],
            min_gold_agreement=data["min_gold_agreement"],
        )
