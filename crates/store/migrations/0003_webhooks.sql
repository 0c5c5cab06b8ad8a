-- Webhook events pushed by the platforms: stored before the platform gets its
-- 200, deduplicated by the platform's event id, and processed exactly once by
-- whichever worker claims them first (the claim holds a lease, so a worker that
-- died mid-event leaves it to another once the lease ends).
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    processed_at BIGINT,
    attempts BIGINT NOT NULL,
    claimed_by TEXT,
    -- Until when the current claim holds, or when a failed event may be retried.
    claimed_until BIGINT NOT NULL,
    last_error TEXT,
    UNIQUE (provider_id, event_id)
);

CREATE INDEX webhook_events_unprocessed ON webhook_events (claimed_until) WHERE processed_at IS NULL;
