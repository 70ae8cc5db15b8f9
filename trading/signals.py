"""Signals trading sends so that higher layers can react without trading importing them."""

from django.dispatch import Signal

# Sent after a user's kill switch trips (kwargs: user_id, label). The agents app halts
# that user's agents in its receiver.
user_halted = Signal()
