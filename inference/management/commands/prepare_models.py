"""Make the files the models derive from their weights (BirdNET's rewritten copies) before any job needs them."""

from django.conf import settings
from django.core.management.base import BaseCommand

from inference.runtimes import available_runtimes, prepare_runtime, runtime_class


class Command(BaseCommand):
    help = (
        "Make, once, the model files the workers derive and cache (BirdNET's copies with its embedding as an output, "
        "in ECHOROO_CACHE_DIR), so that the first job starts at once. `manage.py serve` runs it before the workers."
    )

    def handle(self, *args, **options):
        for name in available_runtimes():
            model = runtime_class(name)
            if model.unavailable_reason(settings):
                continue
            files = prepare_runtime(name, settings)
            if files:
                self.stdout.write(f"{model.display_name}: model files ready in {files[0].parent}")
                for path in files:
                    self.stdout.write(f"  {path.name}")
