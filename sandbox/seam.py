"""The sandbox as the real clients in marketplace/gateways see it, so that they import it from
one place (marketplace.gateways.sandbox_seam) and only where settings.SANDBOX_ENABLED.

- mount(session): answer the partner hosts on a requests.Session from the fakes here;
- wechatpay_keys(): the merchant and platform keys the fake WeChat Pay generated and keeps in
  the database (the client signs and verifies with them instead of WECHATPAY_* settings).
"""

from sandbox.transport import mount
from sandbox.wechatpay import current_keys as wechatpay_keys

__all__ = ["mount", "wechatpay_keys"]
