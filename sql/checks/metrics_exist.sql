-- severity: error
-- description: processed.daily_metrics has exactly one row for the date.
SELECT CAST($date AS DATE) AS date, count(*) AS metric_rows
FROM processed.daily_metrics
WHERE date = $date
HAVING count(*) <> 1
