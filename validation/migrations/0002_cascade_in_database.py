"""Write the validation app's CASCADE / SET NULL foreign keys into PostgreSQL (see echoroo.cascades)."""

from django.db import migrations

from echoroo.cascades import write_rules_into_database


class Migration(migrations.Migration):
    dependencies = [("validation", "0001_initial")]

    operations = [migrations.RunPython(write_rules_into_database, migrations.RunPython.noop)]
