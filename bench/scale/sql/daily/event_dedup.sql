-- description: bench/scale.sh's spill case, not a shipped job: one group per distinct
-- (user_id, event_time, page_id), i.e. about one per event, so the aggregation's state is far
-- bigger than a small --memory-limit and DataFusion has to spill it to disk. On the scale table
-- (the same events appended COPIES times) every n is a multiple of COPIES and sum(n) = all events.
SELECT
    CAST($date AS DATE) AS date,
    user_id,
    event_time,
    page_id,
    count(*) AS n
FROM raw.user_events
WHERE event_date = $date
GROUP BY user_id, event_time, page_id
