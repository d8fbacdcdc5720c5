-- MTA-STS (RFC 8461): the mode the relay applied to a recipient's last
-- delivery attempt ('enforce', 'testing', 'none'; NULL when it was not
-- asked: routes, smarthost, mta_sts = no) and, in testing mode, what
-- enforce would have refused.  Shown in the recipient's detail ("tls")
-- and the delivery events.  (The policy cache itself is still per
-- process: docs/architecture.md "MTA-STS".)
ALTER TABLE recipients ADD COLUMN mta_sts text, ADD COLUMN mta_sts_failure text;
