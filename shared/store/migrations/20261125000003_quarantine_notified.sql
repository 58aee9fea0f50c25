-- When the notifier acknowledged the quarantine-opened event; NULL means it must be sent (again).
ALTER TABLE quarantines ADD COLUMN opened_notified_at timestamptz;
