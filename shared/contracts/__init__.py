"""photcal's contracts: what the services agree on, one module each.

Open this package first. Everything another service, a client or an operator
relies on is declared here once and imported from here:

- :mod:`shared.contracts.subjects` -- NATS subjects, streams, consumers,
  object-store buckets and headers (a table of who publishes what).
- :mod:`shared.contracts.messages` -- the pydantic models that cross NATS
  (``UploadRequested``, ``CalibrationResult``, ``ConeRequest``/``ConeReply``,
  ``DeadLetter``...). The binary cone v2 reply is encoded by
  :mod:`shared.conewire`.
- :mod:`shared.contracts.errors` -- ``ErrorCode``, every stable error code with
  its HTTP status and meaning (README's "Error codes" table is made from it).
  The exception classes that carry them are in :mod:`shared.errors`.
- :mod:`shared.contracts.surveys` -- the reference surveys: VizieR columns,
  bands, colours, resolution.
- :mod:`shared.contracts.routes` -- every HTTP route: method, path, the service
  that serves it, whether the gateway forwards it; each service registers its
  routes from this table.
- :mod:`shared.contracts.collections` -- every MongoDB collection with its
  indexes and the ``shared/db`` module that owns it (its document model and
  every query on it; nothing else touches a collection).

Not here: the band-choice rules (``shared/bands.py``). ``docs/design.md`` is the
design these contracts implement; ``docs/architecture.md`` is the layout.

Nothing in this package imports a service: every service may import it.
"""
