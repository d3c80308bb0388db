-- severity: warn
-- description: under 1% of the messages received on the date were dead letters.
WITH dead AS (
    SELECT count(*) AS n
    FROM raw.user_events_dead_letters
    WHERE CAST(received_at AS DATE) = $date
),
good AS (
    SELECT count(*) AS n
    FROM raw.user_events
    WHERE CAST(ingested_at AS DATE) = $date
)
SELECT dead.n AS dead_letters, good.n AS events,
       CAST(dead.n AS DOUBLE) / (dead.n + good.n) AS dead_letter_rate
FROM dead CROSS JOIN good
WHERE dead.n > 0 AND CAST(dead.n AS DOUBLE) / (dead.n + good.n) > 0.01
