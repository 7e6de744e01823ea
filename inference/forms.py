"""The job settings form: plain Django fields that become services.create_job arguments.

The form only parses types (a number, a whole number, one species per line); what values are
allowed is checked in one place, inference.config.parse_config (and the species by the service),
and its ConfigError is put back onto the form's fields with `add_config_error`.
"""

from __future__ import annotations

from typing import Any

from django import forms

from inference import services
from inference.config import MODEL_SETTINGS, ConfigError, InferenceConfig, help_of
from inference.runtimes import ModelRuntime, available_runtimes, runtime_class

DEFAULTS = InferenceConfig()


def settings_read_by(runtime: type[ModelRuntime]) -> frozenset[str]:
    """Those of the settings only some models read (config.MODEL_SETTINGS) that this model reads."""
    return runtime.job_settings | ({"use_gpu"} if runtime.can_use_gpu else frozenset())


def number_input() -> forms.NumberInput:
    # step="any": the browser accepts any decimal; parse_config says what is allowed.
    return forms.NumberInput(attrs={"step": "any"})


class InferenceJobForm(forms.Form):
    # Defaults, help and allowed values are the config's own (inference.config): one definition for the API too.
    confidence_threshold = forms.FloatField(
        initial=DEFAULTS.confidence_threshold, widget=number_input(), help_text=help_of("confidence_threshold")
    )
    overlap = forms.FloatField(
        label="Overlap (s)", initial=DEFAULTS.overlap, widget=number_input(), help_text=help_of("overlap")
    )
    batch_size = forms.IntegerField(initial=DEFAULTS.batch_size, help_text=help_of("batch_size"))
    use_gpu = forms.BooleanField(
        required=False, initial=DEFAULTS.use_gpu, label="Use a GPU", help_text=help_of("use_gpu")
    )
    use_metadata_filter = forms.BooleanField(
        required=False,
        initial=DEFAULTS.use_metadata_filter,
        label="Use the location filter",
        help_text=help_of("use_metadata_filter"),
    )
    custom_species_list = forms.CharField(
        required=False,
        label="Custom species list",
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One species a line: its label, scientific name, common name (Ruffed Grouse) or eBird code "
        "(rufgro); empty for every species.",
    )
    store_embeddings = forms.BooleanField(
        required=False, initial=DEFAULTS.store_embeddings, help_text=help_of("store_embeddings")
    )
    store_predictions = forms.BooleanField(
        required=False, initial=DEFAULTS.store_predictions, help_text=help_of("store_predictions")
    )
    sensitivity = forms.FloatField(
        initial=DEFAULTS.sensitivity, widget=number_input(), help_text=help_of("sensitivity")
    )
    species_filter_threshold = forms.FloatField(
        initial=DEFAULTS.species_filter_threshold, widget=number_input(), help_text=help_of("species_filter_threshold")
    )
    latitude = forms.FloatField(required=False, widget=number_input(), help_text=help_of("latitude"))
    longitude = forms.FloatField(required=False, widget=number_input(), help_text=help_of("longitude"))
    week = forms.IntegerField(required=False, help_text=help_of("week"))
    start_now = forms.BooleanField(required=False, initial=True, label="Start now")

    def __init__(self, *args: Any, model_name: str | None = None, **kwargs: Any) -> None:
        """With `model_name` the model is fixed (and settings it ignores are left off); without, it is a field
        (and each setting only some models read says which)."""
        super().__init__(*args, **kwargs)
        self.model_name = model_name
        runtimes = [runtime_class(name) for name in ([model_name] if model_name else available_runtimes())]
        for name in MODEL_SETTINGS:
            readers = [runtime.display_name for runtime in runtimes if name in settings_read_by(runtime)]
            if not readers:
                del self.fields[name]
            elif len(readers) < len(runtimes):
                field = self.fields[name]
                field.help_text = f"{field.help_text} Only for {' and '.join(readers)}.".lstrip()
        if model_name is None:
            choices = [(runtime.name, runtime.display_name) for runtime in runtimes]
            self.fields = {"model_name": forms.ChoiceField(choices=choices), **self.fields}

    def clean_custom_species_list(self) -> list[str] | None:
        names = [line.strip() for line in self.cleaned_data["custom_species_list"].splitlines()]
        return [name for name in names if name] or None

    def job_arguments(self) -> dict[str, Any]:
        """The keyword arguments of services.create_job, less the target, `start` and `by`."""
        config = {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in ("model_name", "start_now") and value is not None
        }
        return {"model_name": self.model_name or self.cleaned_data.get("model_name"), "config": config}

    def check_the_rest(self) -> None:
        """When some fields do not parse (or the target is wrong), the service's checks of the others, so that
        every error shows in one round, not the parse errors first and the settings' next."""
        arguments = self.job_arguments()
        if arguments["model_name"] is None:
            return
        for name, message in services.job_errors(**arguments).items():
            if name not in self.errors:
                self.add_config_error(ConfigError({name: message}))

    def add_config_error(self, error: ConfigError) -> None:
        """Show each of the service's errors on its field, or above the form when no field has its name."""
        for name, message in error.errors.items():
            if name in self.fields:
                self.add_error(name, message)
            else:
                self.add_error(None, f"{name.replace('_', ' ')}: {message}")
