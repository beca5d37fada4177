import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from sandbox.liveview.panels import render_pass

INTERVAL_S = 0.1


class Command(BaseCommand):
    help = "Keep every watched live view drawn, so polls are cache hits (runs forever; more are safe)."

    def handle(self, *args, **options):
        self.stdout.write("lab renderer: drawing watched experiments")
        while True:
            try:
                render_pass()
            except Exception as exc:  # a pass that fails is retried; polls render themselves meanwhile
                self.stderr.write(f"lab renderer: pass failed ({exc!r}); retrying")
            finally:
                close_old_connections()
            time.sleep(INTERVAL_S)
