from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from project import health, metrics, private_media
from project.api import api

urlpatterns = [
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Signed, expiring URLs of order videos and exports on local disk (project/private_media.py).
    path(f"{private_media.URL_PREFIX}<path:name>", private_media.serve_private, name="private_media"),
]

if settings.SANDBOX_ENABLED:  # the sandbox app is installed only then (project/settings.py)
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    # Local media (embedded mode); production puts object storage or a proxy in front.
    # With signed private media, order videos and exports only go out through /media-private/.
    private = r"(?!order-videos/|exports/)" if settings.PRIVATE_MEDIA_SIGNED else ""
    urlpatterns.append(
        re_path(rf"^media/{private}(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})
    )

handler404 = "project.health.not_found"
handler500 = "project.health.server_error"
