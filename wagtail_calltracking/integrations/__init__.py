"""Integrations: calls reported to GA4 (Measurement Protocol), Google Ads (a CSV feed of click
conversions fetched on a schedule) and CRM / automation webhooks (signed JSON).

``receivers`` turns the call signals into ``Delivery`` rows after commit; ``delivery`` holds
the outbox machinery (claim, send, retry with backoff); ``tasks`` runs it on django-tasks;
one module per target kind (``ga4``, ``google_ads``, ``crm``) builds and sends payloads.
"""
