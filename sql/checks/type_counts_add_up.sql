-- severity: error
-- description: the per-type counts of daily_metrics and daily_event_type_metrics add up to total_events.
SELECT m.date, m.total_events,
       m.click_events + m.view_events + m.purchase_events + m.login_events + m.logout_events
           AS sum_of_type_columns,
       t.events AS sum_of_event_type_metrics
FROM processed.daily_metrics m
LEFT JOIN (
    SELECT date, sum(events) AS events
    FROM processed.daily_event_type_metrics
    WHERE date = $date
    GROUP BY date
) t ON t.date = m.date
WHERE m.date = $date
  AND (m.click_events + m.view_events + m.purchase_events + m.login_events + m.logout_events
           <> m.total_events
       OR coalesce(t.events, 0) <> m.total_events)
