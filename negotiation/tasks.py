"""Huey tasks of bargaining: thin, idempotent, each calls one action."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from negotiation import actions, conversations


@db_task(retries=3, retry_delay=30)
def offer_expiry_task(offer_id: int) -> str:
    return actions.handle_offer_expiry(offer_id=offer_id)


@db_periodic_task(crontab(minute="*"))
def sweep_expired_offers() -> dict:
    """Expires every due offer, so expiry happens even if its task was lost or the worker was
    down when it fell due (Huey has no acknowledgements)."""
    return actions.sweep_expired_offers()


@db_task(retries=3, retry_delay=60)
def conversation_notice_task(conversation_id: int, user_id: int) -> str:
    return conversations.send_conversation_notice(
        conversation_id=conversation_id, user_id=user_id
    )


@db_task(retries=3, retry_delay=60)
def message_media_check_task(message_id: int) -> str:
    return conversations.request_media_check(message_id=message_id)
