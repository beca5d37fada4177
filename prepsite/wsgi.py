import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prepsite.settings")
application = get_wsgi_application()

from prepsite.checks import refuse_development_key  # noqa: E402  (needs the settings loaded above)

refuse_development_key()  # production (DEBUG off) never starts on the development secret key
