-- severity: warn
-- description: total_events is within 50%..200% of the trailing 7 days' average (needs 3 such days).
WITH trailing AS (
    SELECT avg(total_events) AS avg_events, count(*) AS days
    FROM processed.daily_metrics
    WHERE date >= CAST($date AS DATE) - INTERVAL '7' DAY AND date < $date
)
SELECT m.date, m.total_events, trailing.avg_events, trailing.days
FROM processed.daily_metrics m CROSS JOIN trailing
WHERE m.date = $date
  AND trailing.days >= 3
  AND (m.total_events < 0.5 * trailing.avg_events OR m.total_events > 2 * trailing.avg_events)
