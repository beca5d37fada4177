from django.db import migrations


def use_wal(apps, schema_editor):
    # WAL lets the web server read while workers write. It is stored in the database file, so it is set
    # once here instead of on every connection (a forked work-horse opens one per job).
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


class Migration(migrations.Migration):
    atomic = False  # SQLite cannot change the journal mode inside a transaction
    dependencies = [("sandbox", "0001_initial")]
    operations = [migrations.RunPython(use_wal, migrations.RunPython.noop)]
