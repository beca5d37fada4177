from django.core.management.base import BaseCommand
from rq import Queue

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox.janitor import run_forever


class Command(BaseCommand):
    help = "Recover lab jobs whose worker died (runs forever; one per deployment is enough, more are safe)."

    def handle(self, *args, **options):
        self.stdout.write("lab janitor: watching for abandoned jobs")
        run_forever(Queue(LAB_QUEUE, connection=get_redis()))
