"""The one websocket consumer: a signed-in user's live events (and staff's)."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from alpha_platform.common.realtime import STAFF_GROUP, user_group


class UpdatesConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.groups_joined = [user_group(user.id)]
        if user.is_staff:
            self.groups_joined.append(STAFF_GROUP)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username()})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def platform_event(self, message: dict) -> None:
        await self.send_json(message["event"])
