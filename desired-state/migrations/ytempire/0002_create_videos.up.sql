CREATE TABLE videos (
    id          bigserial PRIMARY KEY,
    channel_id  bigint NOT NULL REFERENCES channels(id),
    title       text NOT NULL,
    status      text NOT NULL DEFAULT 'draft',
    created_at  timestamptz NOT NULL DEFAULT now()
);
