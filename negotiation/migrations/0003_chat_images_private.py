"""Chat images sent before issue 18 are under the public media prefix, readable by anyone who
has the link. Each one (image and thumbnail) moves into the private storage, to
`chat-images/<upload id>/<file name>` as a send now stores it, and the stored `message.created`
events lose the public link they carried (`image_url: null`) and say what is there instead
(`image: {width, height}`). Safe to run again: moved rows are skipped, and a row whose public
file is already gone (a run that moved it and then rolled back) names where it went.

Not reversible in effect: going back leaves the files private and the old code cannot show them.
"""

import posixpath

from django.core.files.storage import storages
from django.db import migrations

FOLDER = "chat-images"  # negotiation.models.CHAT_IMAGES (migrations do not import app code)
BATCH = 500


def _move(name: str, folder: str) -> str:
    """The file's private name, after moving it there if it is still public."""
    target = f"{folder}/{posixpath.basename(name)}"
    public, private = storages["default"], storages["private"]
    if not public.exists(name):
        return target
    with public.open(name, "rb") as original:
        saved = private.save(target, original)
    public.delete(name)
    return saved


def _move_files(apps) -> None:
    Message = apps.get_model("negotiation", "Message")
    ImageUpload = apps.get_model("marketplace", "ImageUpload")
    sent = Message.objects.filter(image__isnull=False).values("image_id")
    uploads = ImageUpload.objects.filter(pk__in=sent).exclude(file__startswith=f"{FOLDER}/")
    for upload in uploads.order_by("pk"):
        folder = f"{FOLDER}/{upload.pk}"
        upload.file = _move(upload.file, folder)
        upload.thumbnail = _move(upload.thumbnail, folder) if upload.thumbnail else ""
        upload.save(update_fields=["file", "thumbnail"])


def _strip_events(apps) -> None:
    Message = apps.get_model("negotiation", "Message")
    Event = apps.get_model("realtime", "Event")
    # The ids first: the rows change under the query that finds them.
    old = list(
        Event.objects.filter(type="message.created")
        .exclude(data__has_key="image")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(old), BATCH):
        batch = list(Event.objects.filter(pk__in=old[start : start + BATCH]))
        ids = [event.data.get("id") for event in batch]
        shown = {
            row["pk"]: {"width": row["image__width"], "height": row["image__height"]}
            for row in Message.objects.filter(
                pk__in=ids, image__isnull=False, is_hidden=False
            ).values("pk", "image__width", "image__height")
        }
        for event in batch:
            event.data = {**event.data, "image_url": None, "image": shown.get(event.data.get("id"))}
        Event.objects.bulk_update(batch, ["data"])


def move_chat_images(apps, schema_editor) -> None:
    _move_files(apps)
    _strip_events(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("negotiation", "0002_conversations"),
        ("realtime", "0002_notifications"),
    ]

    operations = [migrations.RunPython(move_chat_images, migrations.RunPython.noop)]
