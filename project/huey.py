"""RedisHuey that survives a Redis outage at enqueue time.

Tasks are enqueued after commit (refunds, credits, deadlines, expiries). With Redis down the
enqueue raised out of the commit hook, so a request whose work was already committed answered
500. Every such task only hurries work that is recorded on its rows and that a periodic sweeper
redoes (docs/reliability.md), so losing the enqueue is safe: it is logged, and the request
succeeds.
"""

import logging

import redis
from huey import RedisHuey

from project.checks import refuse_unusable_deployment

logger = logging.getLogger("project.huey")


class OutageTolerantRedisHuey(RedisHuey):
    def create_consumer(self, **options):
        # `manage.py run_huey` builds its consumer here, after Django is set up: a production
        # worker refuses to start on the same errors as the servers (project/checks.py).
        refuse_unusable_deployment()
        return super().create_consumer(**options)

    def enqueue(self, task):
        try:
            return super().enqueue(task)
        except redis.RedisError as exc:
            logger.error(
                "could not enqueue %s (%s); its work is on its rows and the sweepers redo it",
                task.name,
                exc,
            )
            return None
