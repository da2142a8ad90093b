"""The production channel layer: channels-redis, made to honour cancellation on Python 3.11.

redis-py 8 sends every command through `asyncio.wait_for(..., socket_timeout)`. On Python 3.11
`wait_for` swallows a cancellation that arrives just as the send completes (CPython
gh-86296, fixed in 3.12). channels-redis's receive loops on BZPOPMIN until a message arrives,
so a consumer cancelled at that moment never ends: its task polls Redis every 5 seconds
forever, a closing server (or test) waits on it, and the connection is never given back.
Measured here: about one cancel in five, 0.5-2 ms after a receive starts, was lost.
"""

import asyncio

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer


class RedisChannelLayer(BaseRedisChannelLayer):
    async def _brpop_with_clean(self, index, channel, timeout):
        member = await super()._brpop_with_clean(index, channel, timeout)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A cancellation was requested and absorbed below us: honour it now. A message
            # popped by this call is safe in the backup queue, which the next receive on the
            # channel pushes back first, so nothing is lost (channels-redis's own design).
            raise asyncio.CancelledError()
        return member
