"""Signals for integrations. Sent after the call is persisted (and, for completion, after the
transaction that stored the final state has committed).

Receivers get ``sender`` (the Call class) and ``call`` (the Call instance)."""

from django.dispatch import Signal

#: An incoming call was stored and attributed (the voice webhook answered or is answering).
call_started = Signal()

#: A call reached its final state (answered/missed/busy/failed/abandoned/voicemail).
call_completed = Signal()

#: An editor tagged a call or changed its value/note in the admin. Extra kwarg: ``user``.
call_tagged = Signal()
