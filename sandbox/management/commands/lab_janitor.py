from django.core.management.base import BaseCommand

from sandbox.engine.rq_storage import lab_queue
from sandbox.ops.janitor import run_forever


class Command(BaseCommand):
    help = (
        "Recover lab jobs whose worker died, finish runs that cannot progress, share workers fairly "
        "(runs forever; one per deployment is enough, more are safe)."
    )

    def handle(self, *args, **options):
        self.stdout.write("lab janitor: watching for abandoned jobs")
        run_forever(lab_queue())
