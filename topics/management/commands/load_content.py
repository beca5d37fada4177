from django.core.management.base import BaseCommand, CommandError

from topics.loader import DEFAULT_CONTENT_DIR, ContentError, content_load


class Command(BaseCommand):
    help = "Validate and load Study content (topics, sections, drill questions) from Markdown files. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(DEFAULT_CONTENT_DIR), help="content directory (default: %(default)s)")

    def handle(self, *args, **options):
        try:
            stats = content_load(path=options["path"])
        except ContentError as error:
            raise CommandError("content is invalid, nothing was loaded:\n" + str(error)) from error
        for topic in stats:
            self.stdout.write(topic.summary())
