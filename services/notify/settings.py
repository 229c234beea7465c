from shared.settings import CommonSettings
from shared.webhooks import WebhookSettings


class NotifySettings(WebhookSettings, CommonSettings):
    """The notify service: callbacks and subscriptions (issue 22). Times in seconds."""

    notify_port: int | None = None
    #: POSTs in flight at once (each waits at most notify_request_timeout for its receiver)
    notify_concurrency: int = 8
    #: seconds a receiver has to answer one POST
    notify_request_timeout: float = 10.0
    #: the first retry's delay; each further one doubles it, up to notify_retry_max_delay
    notify_retry_initial_delay: float = 5.0
    notify_retry_max_delay: float = 600.0
    #: a delivery not delivered this long after it was recorded (or its subscription resumed) is failed:
    #: the dead letter its subscriber can read
    notify_retry_for: float = 6 * 3600.0
    #: seconds a delivered or failed delivery stays listed (GET .../deliveries) before it is dropped
    notify_keep_for: float = 30 * 24 * 3600.0
    #: failed POSTs in a row after which a subscription is paused (its deliveries held until resumed)
    notify_pause_after: int = 20
    #: how often the delivery loop looks for due deliveries when nothing woke it
    notify_poll_interval: float = 1.0
    #: seconds JetStream waits for the consumer's ack of an event before redelivering it
    notify_ack_wait: float = 30.0
    #: seconds to wait before an event is retried when the database is down
    retry_delay: float = 2.0

    @property
    def port(self) -> int:
        return self.notify_port or self.service_port(6)

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is another loop's: its POST's timeout and a margin."""
        return self.notify_request_timeout + 20.0
