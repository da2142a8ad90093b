"""Private files behind the short-lived links `marketplace.media.private_url` issues."""

import mimetypes
import posixpath
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import storages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from ninja import Router

from marketplace.errors import NotFound
from marketplace.media import read_private_token
from marketplace.selectors import may_read_private_file

router = Router(tags=["media"])


def _refused() -> NotFound:
    return NotFound("This link is invalid or has expired.", code="link_expired")


@router.get(
    "/private-media/{token}/{filename}",
    auth=None,
    response={200: None},
    include_in_schema=False,
    summary="A private file (order video, export) behind its signed, expiring link",
)
def private_file(request: HttpRequest, token: str, filename: str):
    # The link stands in for the token (a <video src> sends no Authorization header); the reader
    # it names must still be allowed now, so a revoked party's unexpired link is refused too.
    grant = read_private_token(token[:2000])
    if grant is None or filename != posixpath.basename(grant.name):
        raise _refused()
    if not may_read_private_file(name=grant.name, reader_id=grant.reader_id):
        raise _refused()
    storage = storages["private"]
    if not storage.exists(grant.name):
        raise _refused()
    content_type = mimetypes.guess_type(grant.name)[0] or "application/octet-stream"
    response: HttpResponseBase
    if settings.PRIVATE_MEDIA_ACCEL_REDIRECT:
        # nginx sends the file from its `internal` location (deploy/nginx: /protected-media/).
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = (
            settings.PRIVATE_MEDIA_ACCEL_REDIRECT.rstrip("/") + "/" + quote(grant.name)
        )
    else:
        response = FileResponse(
            storage.open(grant.name, "rb"),
            content_type=content_type,
            filename=posixpath.basename(grant.name),
        )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
