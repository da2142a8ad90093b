"""Where stored files are served from: one URL rule for images, thumbnails and videos."""

from django.core.files.storage import default_storage


def storage_url(name: str) -> str:
    return default_storage.url(name) if name else ""
