"""Figures for the dashboard: counts by status, studies per day by modality,
turnaround (arrived -> final) by modality and priority, workload per
radiologist, and the studies waiting longest."""

import collections
import datetime
import statistics

from peewee import fn

from plugin.models import Study
from plugin.worklist.query import item, user_names

DAYS = 30
WAITING = ("arrived", "in_progress")


def summary(today, now):
    since = today - datetime.timedelta(days=DAYS - 1)
    return {
        "counts_by_status": counts_by_status(),
        "per_day": per_day_by_modality(since, today),
        "turnaround": turnaround(now - datetime.timedelta(days=DAYS)),
        "workload": workload(now),
        "waiting_longest": waiting_longest(now),
    }


def counts_by_status():
    rows = Study.select(Study.status, fn.COUNT(Study.id).alias("n")).group_by(Study.status)
    return {row.status: row.n for row in rows}


def per_day_by_modality(since, today):
    """{"days": [...], "series": {modality: [count per day]}} by study date."""
    days = [since + datetime.timedelta(days=i) for i in range((today - since).days + 1)]
    index = {day: i for i, day in enumerate(days)}
    counts = collections.defaultdict(lambda: [0] * len(days))
    rows = Study.select(Study.study_date, Study.modalities).where(
        Study.study_date.between(since, today), Study.status != "cancelled"
    )
    for row in rows:
        for modality in {m for m in row.modalities.split("\\") if m} or {"?"}:
            counts[modality][index[row.study_date]] += 1
    return {"days": [d.isoformat() for d in days], "series": dict(sorted(counts.items()))}


def turnaround(since):
    """Median and 90th percentile minutes from arrival to final, by modality and priority."""
    samples = collections.defaultdict(list)
    rows = Study.select(Study.modalities, Study.priority, Study.arrived_at, Study.final_at).where(
        Study.final_at >= since, Study.arrived_at.is_null(False)
    )
    for row in rows:
        minutes = (row.final_at - row.arrived_at).total_seconds() / 60
        modality = row.modalities.split("\\")[0] or "?"
        samples[(modality, row.priority)].append(minutes)
    return [
        {
            "modality": modality,
            "priority": priority,
            "studies": len(values),
            "median_minutes": round(statistics.median(values), 1),
            "p90_minutes": round(_percentile(values, 0.9), 1),
        }
        for (modality, priority), values in sorted(samples.items())
    ]


def workload(now):
    """Per radiologist: studies assigned and still to read, and studies they are reading now."""
    names = user_names()
    assigned = (
        Study.select(Study.assignee_id, fn.COUNT(Study.id).alias("n"))
        .where(Study.assignee_id.is_null(False), Study.status.in_(WAITING))
        .group_by(Study.assignee_id)
    )
    reading = (
        Study.select(Study.claimed_by_id, fn.COUNT(Study.id).alias("n"))
        .where(Study.claimed_by_id.is_null(False), Study.claim_expires_at > now)
        .group_by(Study.claimed_by_id)
    )
    table = collections.defaultdict(lambda: {"assigned": 0, "reading": 0})
    for row in assigned:
        table[names.get(row.assignee_id, "?")]["assigned"] = row.n
    for row in reading:
        table[names.get(row.claimed_by_id, "?")]["reading"] = row.n
    return [{"username": name, **counts} for name, counts in sorted(table.items())]


def waiting_longest(now, limit=10):
    names = user_names()
    rows = (
        Study.select()
        .where(Study.status.in_(WAITING), Study.arrived_at.is_null(False))
        .order_by(Study.arrived_at)
        .limit(limit)
    )
    return [item(row, names, now) for row in rows]


def _percentile(values, fraction):
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
