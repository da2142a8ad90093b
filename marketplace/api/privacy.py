"""Privacy and sharing: closing an account (注销), my data, listing share cards and codes."""

from django.conf import settings
from django.core import signing
from django.core.files.storage import storages
from django.http import FileResponse, HttpRequest
from django.utils import timezone
from ninja import Router, Schema, Status

from marketplace import share
from marketplace.actions import privacy
from marketplace.errors import NotFound
from marketplace.models import DataExport
from marketplace.selectors import listing_for_viewer
from project.ratelimit import RateLimit
from project.wire import WireDateTime

router = Router(tags=["privacy"])

EXPORT_SALT = "marketplace.data-export"


class DeletionOut(Schema):
    status: str
    closed_at: WireDateTime
    erase_after: WireDateTime


class ExportOut(Schema):
    status: str
    # Present once ready: a signed link that works without the token, until expires_at.
    url: str | None = None
    expires_at: WireDateTime | None = None
    requested_at: WireDateTime


class ShareOut(Schema):
    title: str
    image_url: str
    path: str
    code_url: str


class LandingOut(Schema):
    path: str
    listing_id: int | None


@router.post(
    "/me/deletion",
    response=DeletionOut,
    summary="Close my account (注销); 409 deletion_blocked lists what to finish first",
)
def close_my_account(request: HttpRequest):
    return privacy.close_account(user=request.auth)


@router.get(
    "/me/export",
    response={200: ExportOut, 202: ExportOut},
    throttle=[RateLimit("data_export")],
    summary="Everything stored about me: 202 while it is built, then a signed, expiring URL",
)
def my_data(request: HttpRequest):
    export = privacy.request_export(user=request.auth)
    if export.status == DataExport.Status.PENDING:
        export.refresh_from_db()  # a new export's task may have run already (an eager queue)
    if export.status != DataExport.Status.READY:
        return Status(202, {"status": export.status, "requested_at": export.created_at})
    token = signing.dumps(export.pk, salt=EXPORT_SALT)
    return {
        "status": export.status,
        "url": f"{settings.PUBLIC_BASE_URL}/api/exports/{token}",
        "expires_at": export.expires_at,
        "requested_at": export.created_at,
    }


@router.get(
    "/exports/{token}",
    auth=None,
    response={200: None},
    include_in_schema=False,
    summary="An export's file, behind its signed link",
)
def export_file(request: HttpRequest, token: str):
    try:
        export_id = signing.loads(
            token, salt=EXPORT_SALT, max_age=settings.DATA_EXPORT_TTL_SECONDS
        )
    except signing.BadSignature as exc:  # SignatureExpired is one
        raise NotFound("This download link is invalid or has expired.", code="link_expired") from exc
    export = DataExport.objects.filter(pk=export_id, status=DataExport.Status.READY).first()
    if export is None or export.expires_at is None or export.expires_at <= timezone.now():
        raise NotFound("This download link is invalid or has expired.", code="link_expired")
    response = FileResponse(
        storages["private"].open(export.file, "rb"),
        as_attachment=True,
        filename=f"my-data-{export.created_at:%Y%m%d}.json",
        content_type="application/json",
    )
    response["Cache-Control"] = "private, no-store"
    return response


@router.get(
    "/listings/{listing_id}/share",
    auth=None,
    response=ShareOut,
    throttle=[RateLimit("share", per="address")],
    summary="Share card and mini-program code of a listing",
)
def listing_share(request: HttpRequest, listing_id: int):
    listing = listing_for_viewer(listing_id=listing_id, viewer=None)
    if listing is None:
        raise NotFound("No such listing.", code="listing_not_found")
    return share.share_assets(listing)


@router.get(
    "/share/landing",
    auth=None,
    response=LandingOut,
    summary="Where a scanned mini-program code leads: the listing, else the home page",
)
def share_landing(request: HttpRequest, scene: str = ""):
    listing_id = share.listing_id_from_scene(scene[:64])
    if listing_id is not None and listing_for_viewer(listing_id=listing_id, viewer=None):
        return {"path": share.listing_path(listing_id), "listing_id": listing_id}
    return {"path": settings.SHARE_HOME_PAGE, "listing_id": None}
