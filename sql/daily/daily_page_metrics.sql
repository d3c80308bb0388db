-- description: per date and page: views, clicks, purchases and distinct users.
SELECT
    event_date AS date,
    page_id,
    count(*) FILTER (WHERE event_type = 'view') AS views,
    count(*) FILTER (WHERE event_type = 'click') AS clicks,
    count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
    count(DISTINCT user_id) AS unique_users
FROM raw.user_events
WHERE event_date = $date
GROUP BY event_date, page_id
