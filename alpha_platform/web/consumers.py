"""The one websocket consumer: a signed-in user's live events (and staff's).

Which groups a socket joins is chosen with ``?stream=``:

- ``user``: the user's own group only. Portal pages use it, so an operator browsing the
  portal sees their own objects there, never other users' (nor each event twice).
- ``staff``: the staff group only (every user's events). Admin pages use it; it needs the
  permission ``trading.watch_all_users`` (superusers have it): being staff is not enough,
  and a user without it is refused (closed with 4403).
- nothing (or ``all``): the user's group, plus the staff group for those with that permission.

Unauthenticated sockets are closed before the handshake completes.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from alpha_platform.common.realtime import STAFF_GROUP, user_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
WATCH_ALL_USERS = "trading.watch_all_users"


class UpdatesConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        stream = (query.get("stream") or ["all"])[0]
        if stream == "user":
            groups = [user_group(user.id)]
        else:
            # has_perm reads the database (and caches on the user): not on the event loop.
            watches_all = await database_sync_to_async(user.has_perm)(WATCH_ALL_USERS)
            if stream == "staff":
                if not watches_all:
                    await self.close(code=CLOSE_FORBIDDEN)
                    return
                groups = [STAFF_GROUP]
            else:
                groups = [user_group(user.id)] + ([STAFF_GROUP] if watches_all else [])
        self.groups_joined = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username(), "groups": groups})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The client's heartbeat: a socket that stops answering is replaced by the client.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "t": content.get("t")})

    async def platform_event(self, message: dict) -> None:
        """Every event (order, position, balance, decision, agent, risk.event) arrives as
        one ``platform.event`` message (alpha_platform.common.realtime) and is forwarded
        as is; the page dispatches on its ``type``."""
        await self.send_json(message["event"])
