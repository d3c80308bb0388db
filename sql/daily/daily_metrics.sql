-- description: one row per date: volume, distinct users and sessions, events per type,
-- conversion rate (purchasing users / active users) and average events per session.
SELECT
    CAST($date AS DATE) AS date,
    count(*) AS total_events,
    count(DISTINCT user_id) AS unique_users,
    count(DISTINCT session_id) AS unique_sessions,
    count(*) FILTER (WHERE event_type = 'click') AS click_events,
    count(*) FILTER (WHERE event_type = 'view') AS view_events,
    count(*) FILTER (WHERE event_type = 'purchase') AS purchase_events,
    count(*) FILTER (WHERE event_type = 'login') AS login_events,
    count(*) FILTER (WHERE event_type = 'logout') AS logout_events,
    CAST(count(DISTINCT user_id) FILTER (WHERE event_type = 'purchase') AS DOUBLE)
        / NULLIF(count(DISTINCT user_id), 0) AS conversion_rate,
    CAST(count(*) AS DOUBLE) / NULLIF(count(DISTINCT session_id), 0) AS avg_events_per_session
FROM raw.user_events
WHERE event_date = $date
