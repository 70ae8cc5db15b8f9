"""Run one decision of an agent now, in this process, and print its summary."""

from django.core.management.base import BaseCommand, CommandError

from agents.models import AgentConfig, Decision
from agents.services import agent_tick_run


class Command(BaseCommand):
    help = "Run one decision of the agent now and print what it did."

    def add_arguments(self, parser):
        parser.add_argument("agent_id", type=int)

    def handle(self, *args, agent_id: int, **options):
        agent = AgentConfig.objects.select_related("account", "owner").filter(pk=agent_id).first()
        if agent is None:
            raise CommandError(f"No agent with id {agent_id}.")
        # Through the tick, so the agent's lock is held: never beside a scheduled decision.
        decision = Decision.objects.get(pk=agent_tick_run(agent_id=agent.pk, trigger=Decision.Trigger.MANUAL))
        self.stdout.write(f"Decision {decision.pk} of agent {agent.pk} ({agent.name}) on {agent.account}: "
                          f"{decision.status}")
        self.stdout.write(f"  {decision.summary}")
        for call in decision.tool_calls.select_related("order", "risk_event"):
            line = f"  #{call.index} {call.name} {call.arguments} -> {call.status}"
            if call.risk_event_id:
                line += f" | risk {call.risk_event.rule}: {call.risk_event.message}"
            if call.order_id:
                line += f" | order {call.order.client_order_id} {call.order.status}"
            self.stdout.write(line)
        timings = ", ".join(f"{k} {v:.0f} ms" for k, v in decision.node_timings.items())
        self.stdout.write(f"  tokens {decision.prompt_tokens}/{decision.completion_tokens}, "
                          f"cost {decision.cost_usd} USD, {timings}")
        if decision.error:
            self.stdout.write(self.style.ERROR(f"  error: {decision.error}"))
