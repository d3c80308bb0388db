-- description: per date and event type: events and distinct users.
SELECT
    event_date AS date,
    event_type,
    count(*) AS events,
    count(DISTINCT user_id) AS unique_users
FROM raw.user_events
WHERE event_date = $date
GROUP BY event_date, event_type
