CREATE TABLE video_queue (
    id          bigserial PRIMARY KEY,
    video_id    bigint REFERENCES videos(id),
    status      text NOT NULL DEFAULT 'pending',
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE video_costs (
    id          bigserial PRIMARY KEY,
    video_id    bigint REFERENCES videos(id),
    total       numeric(10, 4) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
