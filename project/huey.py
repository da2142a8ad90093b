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
from huey import signals as S

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

    def enqueue_many(self, tasks) -> None:
        """Queues several tasks with one LPUSH: one round trip for all the tasks a transaction
        queued (project.tasking). The same list order as one LPUSH each (the consumer pops the
        first pushed first); the same enqueue signal per task."""
        if self._immediate or len(tasks) < 2:
            for task in tasks:
                self.enqueue(task)
            return
        for task in tasks:
            if task.expires:
                task.resolve_expires(self.utc)
            self._emit(S.SIGNAL_ENQUEUED, task)
        try:
            self.storage.conn.lpush(
                self.storage.queue_key, *[self.serialize_task(task) for task in tasks]
            )
        except redis.RedisError as exc:
            logger.error(
                "could not enqueue %d tasks (%s: %s); their work is on their rows and the "
                "sweepers redo it",
                len(tasks),
                ", ".join(sorted({task.name for task in tasks})),
                exc,
            )
