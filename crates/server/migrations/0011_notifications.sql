-- Notifications: where a subscription wants to hear of what needs a person (an
-- e-mail address or a webhook), and the outbox of messages to them. A message is
-- stored once per channel and event (the key), and delivered by the maintenance
-- round of whichever replica claims it, with retries. Portable SQL, as before.

CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    -- 'email' or 'webhook'
    kind TEXT NOT NULL,
    -- The address, or the URL.
    target TEXT NOT NULL,
    -- A webhook's signing key (hex); the subscription got it once.
    secret TEXT,
    -- A machine without a successful backup for this many days is reported.
    missed_backup_days BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX notification_channels_subscription ON notification_channels (subscription_id);

CREATE TABLE notifications (
    channel_id TEXT NOT NULL REFERENCES notification_channels (id),
    event_key TEXT NOT NULL,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The event as JSON: a webhook's body, an e-mail's details.
    body TEXT NOT NULL,
    created BIGINT NOT NULL,
    -- 'pending', 'sent' or 'failed' (given up after its last attempt)
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    claimed BIGINT,
    last_error TEXT,
    sent BIGINT,
    PRIMARY KEY (channel_id, event_key)
);
CREATE INDEX notifications_due ON notifications (state, next_attempt);
