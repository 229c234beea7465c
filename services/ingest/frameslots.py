"""A bound on the FITS frames the gateway holds at once: each is up to ``max_image_bytes`` in memory."""

from __future__ import annotations

from prometheus_client import Gauge

from shared.contracts.errors import ErrorCode
from shared.errors import RateLimited


class FrameSlots:
    """How many FITS frames the gateway holds at once (each up to ``max_image_bytes`` in memory, until it is
    stored and answered): a frame beyond them is refused with 429 ``frames_busy`` and a Retry-After,
    before more than its first bytes are read. A catalogue never waits for a slot."""

    def __init__(self, slots: int, retry_after_s: int = 5) -> None:
        self.free, self.size, self.retry_after_s = slots, slots, retry_after_s

    def take(self) -> None:
        if self.free <= 0:
            raise FramesBusy(
                f"the server is receiving {self.size} FITS frames now, as many as it holds at once "
                f"(PHOTCAL_MAX_FRAMES_IN_FLIGHT): send this one again in {self.retry_after_s} s",
                retry_after=self.retry_after_s,
            )
        self.free -= 1
        FRAMES_IN_FLIGHT.inc()

    def give_back(self) -> None:
        self.free = min(self.size, self.free + 1)
        FRAMES_IN_FLIGHT.dec()


#: the request key set while a request holds a frame slot (handle_upload gives it back when it ends)
FRAME_SLOT = "photcal.frame_slot"
FRAMES_IN_FLIGHT = Gauge("photcal_gateway_frames_in_flight", "FITS frames the gateway holds now (received or waiting)")


class FramesBusy(RateLimited):
    code = ErrorCode.FRAMES_BUSY
