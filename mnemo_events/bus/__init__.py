"""The bus internals behind :mod:`mnemo_events.event_bus`, which is their facade.

Private modules, one owner each: the bounded mailbox (``_mailbox``), the bus task that pumps
it into the Subject (``_dispatch``), the per-type router (``_router``), the subscription actor
and its table (``_subscription``, ``_subscriptions``), async streams (``_stream``), batch and
publish checks (``_batch``, ``_publish_checks``), the scan reducers (``_reducers``) and the
asyncio helpers (``_aio``).
"""
