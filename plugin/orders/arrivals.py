"""Images reach an order: plugin/studyindex.store calls these inside its
transaction when a study takes over an order's study row."""

import logging

from plugin.db import database
from plugin.orders.models import Order

LOGGER = logging.getLogger(__name__)

# Orders that images may still arrive for (a cancelled one stays cancelled).
AWAITING_IMAGES = ("scheduled", "in_progress", "completed", "discontinued")


def order_of_study(study):
    """The order whose study row this is, if any."""
    if study.id is None:
        return None
    return Order.get_or_none(Order.study == study.id)


def link_arrival(order, now, events):
    """The order's images arrived: it becomes `arrived`, published on ``events``
    (order.changed) once the caller's transaction has committed it."""
    now = now.replace(tzinfo=None) if now.tzinfo else now  # orders keep naive UTC
    changed = (
        Order.update(status="arrived", arrived_at=now, updated_at=now)
        .where(Order.id == order.id, Order.status.in_(AWAITING_IMAGES))
        .execute()
    )
    if changed:
        LOGGER.info("event=order_arrived id=%d study_id=%d", order.id, order.study_id)
        database.after_commit(
            lambda: events.publish(
                "order.changed", order_id=order.id, accession_number=order.accession_number, status="arrived"
            )
        )
