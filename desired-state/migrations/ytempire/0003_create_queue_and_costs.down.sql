DROP TABLE video_costs;
DROP TABLE video_queue;
