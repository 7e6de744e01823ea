"""Write each project foreign key's CASCADE / SET NULL rule into PostgreSQL (see echoroo.cascades)."""

from django.db import migrations

from echoroo.cascades import write_rules_into_database


class Migration(migrations.Migration):
    dependencies = [
        ("echoroo", "0003_drop_redundant_fk_indexes"),
        ("embeddings", "0002_drop_redundant_fk_indexes"),
        ("inference", "0001_initial"),
        ("classifiers", "0001_initial"),
    ]

    operations = [migrations.RunPython(write_rules_into_database, migrations.RunPython.noop)]
