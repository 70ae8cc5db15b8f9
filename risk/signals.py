"""A risk profile is created with every user, however the user is made (sign-up, admin,
createsuperuser). The receiver only calls the service."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="risk_profile_for_new_user")
def _create_risk_profile(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from risk.services import risk_profile_create

        risk_profile_create(user=instance)
