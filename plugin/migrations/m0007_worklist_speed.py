"""Worklist queries that stay fast at 100 000 studies: the words of each
study's folded search text in their own indexed table (a search becomes an
index range, not two table scans), an expression index for the default
priority order, and indexes that cover the date sort."""

from peewee import ForeignKeyField, Model, TextField

RANK = "(CASE priority WHEN 'stat' THEN 3 WHEN 'urgent' THEN 2 ELSE 1 END)"


class Study(Model):
    search_text = TextField()

    class Meta:
        table_name = "study"


class StudyTerm(Model):
    study = ForeignKeyField(Study, on_delete="CASCADE")
    term = TextField()

    class Meta:
        table_name = "study_term"


def up(db):
    postgres = "postgres" in db.__class__.__name__.lower()
    with db.bind_ctx([Study, StudyTerm]):
        db.create_tables([StudyTerm])
        collate = ' COLLATE "C"' if postgres else ""  # byte order: prefix ranges work
        db.execute_sql(f"CREATE INDEX study_term_term ON study_term (term{collate}, study_id)")
        rows = [
            (study.id, term)
            for study in Study.select(Study.id, Study.search_text)
            for term in sorted(set(study.search_text.split()))
        ]
        for start in range(0, len(rows), 1000):
            StudyTerm.insert_many(rows[start : start + 1000], fields=[StudyTerm.study, StudyTerm.term]).execute()
    db.execute_sql(f"CREATE INDEX study_rank_arrived ON study ({RANK} DESC, arrived_at, id)")
    db.execute_sql(f"CREATE INDEX study_status_rank_arrived ON study (status, {RANK} DESC, arrived_at, id)")
    db.execute_sql("CREATE INDEX study_date_time_id ON study (study_date, study_time, id)")
