"""The annotations' foreign keys cascade in PostgreSQL too (see echoroo.cascades)."""

from django.db import migrations

from echoroo.cascades import write_rules_into_database


class Migration(migrations.Migration):
    dependencies = [("annotations", "0001_initial")]

    operations = [migrations.RunPython(write_rules_into_database, migrations.RunPython.noop)]
