from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from project import health, metrics
from project.api import api

urlpatterns = [
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

if settings.SANDBOX_ENABLED:  # the sandbox app is installed only then (project/settings.py)
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    # Local media (embedded mode); production puts object storage or a proxy in front.
    # Private files (order videos, chat images, exports) are in PRIVATE_MEDIA_ROOT, which no
    # URL serves: only a reader's signed link does (marketplace/media.py).
    urlpatterns.append(
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})
    )

handler404 = "project.health.not_found"
handler500 = "project.health.server_error"
