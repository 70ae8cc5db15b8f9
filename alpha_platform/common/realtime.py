"""Live updates: events go to Channels groups only after the transaction commits."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

STAFF_GROUP = "staff"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _send(groups: list[str], event: dict[str, Any]) -> None:
    if not getattr(settings, "REALTIME_ENABLED", True):
        return
    layer = get_channel_layer()
    if layer is None:
        return
    # Round-trip through JSON so Decimals and datetimes travel as strings.
    payload = json.loads(json.dumps(event, cls=DjangoJSONEncoder))
    message = {"type": "platform.event", "event": payload}
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception as exc:  # a push is best effort; the write already committed
            logger.warning("realtime push to %s failed: %s", group, exc.__class__.__name__)


def send_to_user_on_commit(user_id: int, event: dict[str, Any], *, staff: bool = True) -> None:
    """Queue ``event`` (with a ``type`` key) for the user's sockets, and staff's, on commit."""
    groups = [user_group(user_id)] + ([STAFF_GROUP] if staff else [])
    transaction.on_commit(lambda: _send(groups, event))
