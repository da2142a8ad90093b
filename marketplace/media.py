"""Where stored files are served from: one URL rule for public images and thumbnails, one for
private files (order videos, chat images, personal-data exports).

Every URL a client gets is absolute, on `MEDIA_BASE_URL` (a CDN, or `PUBLIC_BASE_URL` by
default), never on the request's host: socket events and tasks have no request, cached public
bodies are shared by every client, and a mini-program's `<image src>` needs a full URL.

Private files live in `STORAGES["private"]`, never under the public media prefix (a separate
directory locally, a separate key prefix on S3), and are reached only through a short-lived URL
issued to one reader (`private_url`): an S3 presigned URL when the private storage is object
storage, otherwise a signed link to our own view (`GET /api/private-media/{token}/{filename}`), which
streams the file or, behind nginx, hands it over with `X-Accel-Redirect`. Such a URL expires, so
it is never stored: events say a file is there and the client asks its object for a fresh URL."""

import posixpath
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.files.storage import FileSystemStorage, storages

PRIVATE_SALT = "marketplace.private-media"


def storage_url(name: str, *, storage: str = "default") -> str:
    if not name:
        return ""
    url = storages[storage].url(name)
    if urlsplit(url).scheme:
        # Object storage (and its CDN domain) already answers with a full URL; a signed one
        # must stay byte for byte as it was signed.
        return url
    return settings.MEDIA_BASE_URL + "/" + url.lstrip("/")


def private_url(name: str, *, reader_id: int, ttl: int | None = None) -> str:
    """A URL to the private file `name` for the user `reader_id`, valid for `ttl` seconds
    (PRIVATE_MEDIA_TTL_SECONDS by default). Callers check the reader may see the file first."""
    if not name:
        return ""
    ttl = ttl or settings.PRIVATE_MEDIA_TTL_SECONDS
    storage = storages["private"]
    if not isinstance(storage, FileSystemStorage):
        # django-storages' S3Storage presigns with the expiry asked for; nothing of ours in it.
        return storage.url(name, expire=ttl)  # type: ignore[call-arg]  # S3Storage.url
    token = signing.dumps(
        {"n": name, "u": reader_id, "x": int(time.time()) + ttl}, salt=PRIVATE_SALT, compress=True
    )
    # The file's own name last: players and downloads judge the type by it.
    return f"{settings.PUBLIC_BASE_URL}/api/private-media/{token}/{posixpath.basename(name)}"


@dataclass(frozen=True)
class PrivateGrant:
    name: str
    reader_id: int
    expires_at: int


def read_private_token(token: str) -> PrivateGrant | None:
    """The grant a `private_url` token carries, or None when forged, altered or expired."""
    try:
        payload = signing.loads(token, salt=PRIVATE_SALT)
    except signing.BadSignature:
        return None
    try:
        grant = PrivateGrant(
            name=str(payload["n"]), reader_id=int(payload["u"]), expires_at=int(payload["x"])
        )
    except (KeyError, TypeError, ValueError):
        return None
    if grant.expires_at <= time.time() or not grant.name or ".." in grant.name.split("/"):
        return None
    return grant
