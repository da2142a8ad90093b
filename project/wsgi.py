"""WSGI entry point: the REST API and admin can be served by WSGI workers (see docs/operations.md)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()

from project.checks import refuse_unusable_deployment  # noqa: E402

# Production and staging refuse to serve with errors in `manage.py check --deploy`.
refuse_unusable_deployment()
