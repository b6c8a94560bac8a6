SELECT anonymous_id, created_at AS timestamp FROM signups
WHERE created_at >= $start AND created_at < $end
