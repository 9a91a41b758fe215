CREATE TABLE channels (
    id          bigserial PRIMARY KEY,
    youtube_id  text NOT NULL UNIQUE,
    title       text NOT NULL,
    status      text NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now()
);
