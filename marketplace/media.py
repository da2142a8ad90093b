"""Where stored files are served from: one URL rule for images, thumbnails and videos.

Every URL a client gets is absolute, on `MEDIA_BASE_URL` (a CDN, or `PUBLIC_BASE_URL` by
default), never on the request's host: socket events and tasks have no request, cached public
bodies are shared by every client, and a mini-program's `<image src>` needs a full URL (a
relative one also fails `PATCH /api/me`'s `avatar_url` rule)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.storage import storages


def storage_url(name: str, *, storage: str = "default") -> str:
    """`storage="private"` for order videos: on S3 a signed, expiring URL, never a CDN link."""
    if not name:
        return ""
    url = storages[storage].url(name)
    if urlsplit(url).scheme:
        # Object storage (and its CDN domain) already answers with a full URL; a signed one
        # must stay byte for byte as it was signed.
        return url
    return settings.MEDIA_BASE_URL + "/" + url.lstrip("/")
