"""Reactions to signals from lower layers; each receiver only calls a service."""

from django.dispatch import receiver

from trading.signals import user_halted


@receiver(user_halted, dispatch_uid="agents_halt_on_kill_switch")
def _halt_agents(sender, user_id: int, label: str, **kwargs) -> None:
    from agents.services import agents_halt_for_user

    agents_halt_for_user(user_id=user_id, reason=f"kill switch ({label})")
