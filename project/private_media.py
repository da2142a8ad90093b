"""Private media on local disk (order videos, personal-data exports): signed, expiring URLs.

On object storage the "private" storage hands out the bucket's own signed URLs. On a local disk
behind nginx (deploy/nginx/marketplace.conf.in) it does the same with `/media-private/<name>?
e=<expiry>&s=<signature>`: the app checks the signature and answers with `X-Accel-Redirect`, and
nginx sends the file from an `internal` location, so no Python process streams a 100 MB video
and nothing under /media/order-videos/ is reachable without a signature. Without
PRIVATE_MEDIA_ACCEL_REDIRECT (a server without nginx) the app streams the file itself.
"""

import mimetypes
import time
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import FileSystemStorage, storages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare, salted_hmac

from project.middleware import error_response

URL_PREFIX = "media-private/"
_SALT = "project.private_media"


def signature(name: str, expires: int) -> str:
    return salted_hmac(_SALT, f"{name}\n{expires}", algorithm="sha256").hexdigest()[:32]


class SignedFileSystemStorage(FileSystemStorage):
    """The "private" storage on local disk: every URL is signed and expires."""

    def url(self, name: str | None) -> str:
        if not name:
            raise ValueError("a private file has no URL without a name")
        expires = int(time.time()) + settings.PRIVATE_MEDIA_URL_TTL_SECONDS
        return f"/{URL_PREFIX}{quote(name)}?e={expires}&s={signature(name, expires)}"


def serve_private(request: HttpRequest, name: str) -> HttpResponse | FileResponse:
    try:
        expires = int(request.GET.get("e", ""))
    except ValueError:
        expires = 0
    given = request.GET.get("s", "")
    if expires < time.time() or not constant_time_compare(given, signature(name, expires)):
        # Expired, forged or for another file: as if there were nothing here.
        return error_response(404, "not_found", "No such file.")
    storage = storages["private"]
    try:
        if not storage.exists(name):
            return error_response(404, "not_found", "No such file.")
    except SuspiciousFileOperation:  # ../ out of the media root
        return error_response(404, "not_found", "No such file.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    prefix = settings.PRIVATE_MEDIA_ACCEL_REDIRECT
    response: HttpResponse | FileResponse
    if prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(name)
    else:
        response = FileResponse(storage.open(name, "rb"), content_type=content_type)
    # A signed URL is one user's: never kept by a shared cache.
    response["Cache-Control"] = "private, no-store"
    return response
