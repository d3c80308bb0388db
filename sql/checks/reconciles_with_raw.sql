-- severity: error
-- description: total_events and unique_users equal what raw.user_events holds for the date.
WITH raw AS (
    SELECT count(*) AS events, count(DISTINCT user_id) AS users
    FROM raw.user_events
    WHERE event_date = $date
)
SELECT m.date, m.total_events, raw.events AS raw_events, m.unique_users, raw.users AS raw_users
FROM processed.daily_metrics m CROSS JOIN raw
WHERE m.date = $date
  AND (m.total_events <> raw.events OR m.unique_users <> raw.users)
