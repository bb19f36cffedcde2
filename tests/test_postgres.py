"""The plugin database on PostgreSQL (scale-out), against the machine's server.

Skipped, with the reason, where PostgreSQL is not reachable on 127.0.0.1:5432.
"""

import dicomgen
import psycopg2
import pytest
from pacs_server import PacsServer


def _study_row(url, study_uid):
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.instance_count, s.modalities, p.name FROM study s "
            "JOIN patient p ON p.id = s.patient_id WHERE s.study_instance_uid = %s",
            (study_uid,),
        )
        return cur.fetchone()


def test_index_on_postgresql_survives_restart(pg_database, tmp_path):
    server = PacsServer(tmp_path / "pacs", environ={"PACS_DATABASE_URL": pg_database}).start()
    try:
        assert server.get("/pacs/health").json()["database"] == "ok"
        spec = dicomgen.StudySpec(patient_name="Ωμέγα^Άλφα", charset="ISO_IR 192")
        server.storescu(dicomgen.write(dicomgen.mr_series(spec, slices=5), tmp_path / "dcm"))
        row = server.wait_for(lambda: _study_row(pg_database, spec.study_uid), what="study in PostgreSQL")
        assert row == (5, "MR", "Ωμέγα^Άλφα")
        found = server.get("/pacs/api/studies", params={"q": "ωμε"}).json()  # prefix search, COLLATE "C"
        assert [item["study_instance_uid"] for item in found["items"]] == [spec.study_uid]
        assert server.get("/pacs/api/studies", params={"q": "zzz"}).json()["total"] == 0
        server.restart()  # migrations already applied: start-up must not fail
        assert _study_row(pg_database, spec.study_uid) == (5, "MR", "Ωμέγα^Άλφα")
        assert not (tmp_path / "pacs" / "pacs.sqlite").exists()
    finally:
        server.stop()


def test_unreachable_database_stops_start_up_with_a_clear_log(tmp_path):
    server = PacsServer(tmp_path / "pacs", environ={"PACS_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/none"})
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=30)
    log = server.log_text()
    assert "event=database_unavailable url=postgresql://nobody:***@127.0.0.1:1/none" in log
    assert "secret" not in log
