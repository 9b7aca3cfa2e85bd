"""Signal receivers of the numbers area (imported by ``signal_handlers``).

* Saving or deleting a source, pool, number, site or the call tracking site settings drops
  the cached number configuration (``rules.invalidate_config``). Leasing changes numbers with
  ``QuerySet.update()`` and never triggers this.
* A number deactivated, moved out of its pool or whose pool is deactivated or deleted has its
  live lease released (reason ``deactivated``): the visitor gets another number on the next
  page, and attribution sees the lease end at that moment.
"""

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from wagtail.models import Site

from ..models import (
    CallTrackingSiteSettings,
    LeaseReleaseReason,
    NumberPool,
    Source,
    TrackingNumber,
)
from .leasing import release_lease
from .rules import invalidate_config

_CONFIG_MODELS = (Source, NumberPool, TrackingNumber, CallTrackingSiteSettings, Site)

for _model in _CONFIG_MODELS:
    post_save.connect(invalidate_config, sender=_model, dispatch_uid=f"ct-config-save-{_model.__name__}")
    post_delete.connect(invalidate_config, sender=_model, dispatch_uid=f"ct-config-delete-{_model.__name__}")


@receiver(post_save, sender=TrackingNumber, dispatch_uid="ct-number-release-on-change")
def release_lease_of_changed_number(sender, instance, raw=False, **kwargs):
    if raw:
        return
    # Read the lease state fresh: the saved instance may be an admin form's stale copy.
    row = (
        TrackingNumber.objects.filter(pk=instance.pk)
        .values_list("current_lease_id", "current_lease__pool_id", "current_lease__released_at")
        .first()
    )
    if not row or row[0] is None or row[2] is not None:
        return
    lease_id, lease_pool_id, _released = row
    if not instance.active or lease_pool_id != instance.pool_id:
        release_lease(lease_id, LeaseReleaseReason.DEACTIVATED)


def _release_pool_leases(pool_id):
    lease_ids = TrackingNumber.objects.filter(
        pool_id=pool_id, current_lease__isnull=False, current_lease__released_at__isnull=True
    ).values_list("current_lease_id", flat=True)
    for lease_id in list(lease_ids):
        release_lease(lease_id, LeaseReleaseReason.DEACTIVATED)


@receiver(post_save, sender=NumberPool, dispatch_uid="ct-pool-release-on-deactivate")
def release_leases_of_inactive_pool(sender, instance, raw=False, **kwargs):
    if not raw and not instance.active:
        _release_pool_leases(instance.pk)


@receiver(pre_delete, sender=NumberPool, dispatch_uid="ct-pool-release-on-delete")
def release_leases_of_deleted_pool(sender, instance, **kwargs):
    _release_pool_leases(instance.pk)
