import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from prepsite.redis_conn import get_redis, wait_for_wake
from sandbox.engine import keys
from sandbox.liveview.panels import render_pass

INTERVAL_S = 0.1  # between passes while some page watches a run
IDLE_WAIT_S = 1.0  # while none does: block this long for a page to open one (sandbox.liveview.render_cache.watch)


class Command(BaseCommand):
    help = "Keep every watched live view drawn, so polls are cache hits (runs forever; more are safe)."

    def handle(self, *args, **options):
        self.stdout.write("lab renderer: drawing watched experiments")
        while True:
            watched = True  # after a failed pass, wait a pass's interval, not for a wake
            try:
                watched = render_pass() > 0
                if not watched:
                    wait_for_wake(get_redis(), keys.WAKE_RENDERER, IDLE_WAIT_S)
            except Exception as exc:  # a pass that fails is retried; polls render themselves meanwhile
                self.stderr.write(f"lab renderer: pass failed ({exc!r}); retrying")
            finally:
                close_old_connections()
            if watched:
                time.sleep(INTERVAL_S)
