"""`lake daily` metrics equal what DuckDB computes independently from the raw Delta table."""
import json
import math
import pathlib

from conftest import run
from duckdb_delta import connect

SQL = pathlib.Path(__file__).resolve().parents[2] / "sql"


def test_daily_metrics_match_duckdb(tmp_path, lake_bin, brokers, topic):
    run(lake_bin, "produce", "--brokers", brokers, "--topic", topic, "--events", "30000",
        "--days", "2", "--start-date", "2025-01-10", "--seed", "4", "--json")
    run(lake_bin, "ingest", "--lake", str(tmp_path), "--brokers", brokers, "--topic", topic,
        "--group", topic, "--until-caught-up")
    # The sensor reads this topic's progress: 2025-01-11's events make 2025-01-10 complete.
    out = run(lake_bin, "daily", "--lake", str(tmp_path), "--sql", str(SQL), "--date", "2025-01-10",
              "--topic", topic, "--json")
    day = json.loads(out.stdout)["dates"][0]
    assert day["rows"]["processed.daily_metrics"] == 1
    assert [c["status"] for c in day["checks"]] == ["pass"] * 6, day["checks"]

    raw = str(tmp_path / "raw" / "user_events")
    con = connect()
    expected = con.execute(f"""
        SELECT count(*), count(DISTINCT user_id), count(DISTINCT session_id),
               count(*) FILTER (WHERE event_type = 'click'),
               count(*) FILTER (WHERE event_type = 'view'),
               count(*) FILTER (WHERE event_type = 'purchase'),
               count(*) FILTER (WHERE event_type = 'login'),
               count(*) FILTER (WHERE event_type = 'logout'),
               count(DISTINCT user_id) FILTER (WHERE event_type = 'purchase') / count(DISTINCT user_id),
               count(*) / count(DISTINCT session_id)
        FROM delta_scan('{raw}') WHERE event_date = DATE '2025-01-10'""").fetchone()
    got = con.execute(f"""
        SELECT total_events, unique_users, unique_sessions, click_events, view_events,
               purchase_events, login_events, logout_events, conversion_rate,
               avg_events_per_session
        FROM delta_scan('{tmp_path / "processed" / "daily_metrics"}')""").fetchall()
    assert len(got) == 1
    assert got[0][:8] == expected[:8]
    assert expected[0] > 10000
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(got[0][8:], expected[8:]))

    pages = con.execute(f"""
        SELECT page_id, count(*) FILTER (WHERE event_type = 'view'), count(*) FILTER (WHERE event_type = 'click'),
               count(*) FILTER (WHERE event_type = 'purchase'), count(DISTINCT user_id)
        FROM delta_scan('{raw}') WHERE event_date = DATE '2025-01-10' GROUP BY 1 ORDER BY 1""").fetchall()
    ours = con.execute(f"""
        SELECT page_id, views, clicks, purchases, unique_users
        FROM delta_scan('{tmp_path / "processed" / "daily_page_metrics"}') ORDER BY 1""").fetchall()
    assert ours == pages
