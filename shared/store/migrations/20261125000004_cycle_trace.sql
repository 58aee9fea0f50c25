-- The W3C traceparent of the call that staged the cycle: later steps of the cycle (an apply
-- after an approval, a resumed apply) continue the same trace.
ALTER TABLE cycles ADD COLUMN trace_parent text;
