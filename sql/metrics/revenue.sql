SELECT anonymous_id, ordered_at AS timestamp, revenue AS value FROM orders
WHERE ordered_at >= $start AND ordered_at < $end
