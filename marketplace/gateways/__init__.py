"""The partners' clients: WeChat (wechatpy), WeChat Pay v3 (wechatpayv3), Kuaidi100.

Where settings.SANDBOX_ENABLED the partners are the sandbox app's fakes (sandbox/, docs/sandbox.md):
the same client libraries run, with the sandbox's transport mounted on their HTTP sessions. This
module is the one place the clients reach the sandbox from.
"""

from types import ModuleType

import requests
from django.conf import settings


def sandbox_seam() -> ModuleType:
    """What the clients take from the sandbox (sandbox/seam.py); only where SANDBOX_ENABLED."""
    from sandbox import seam  # local: the sandbox is only installed where SANDBOX_ENABLED

    return seam


def partner_session(session: requests.Session | None = None) -> requests.Session:
    """`session` (a new one by default) for calling the partners: where SANDBOX_ENABLED, the
    sandbox's transport answers for the partner hosts on it."""
    session = requests.Session() if session is None else session
    if settings.SANDBOX_ENABLED:
        sandbox_seam().mount(session)
    return session
