-- severity: error
-- description: no empty keys in the day's raw events and no NULL keys in the processed tables.
SELECT 'raw.user_events' AS source, 'session_id or event_type is empty' AS problem, count(*) AS rows
FROM raw.user_events
WHERE event_date = $date AND (session_id = '' OR event_type = '')
HAVING count(*) > 0
UNION ALL
SELECT 'processed.daily_event_type_metrics', 'event_type is NULL', count(*)
FROM processed.daily_event_type_metrics
WHERE date = $date AND event_type IS NULL
HAVING count(*) > 0
UNION ALL
SELECT 'processed.daily_page_metrics', 'page_id is NULL', count(*)
FROM processed.daily_page_metrics
WHERE date = $date AND page_id IS NULL
HAVING count(*) > 0
