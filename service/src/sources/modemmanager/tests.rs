//! Tests of the ModemManager source against the real daemon live in the integration tests (`tests/tests/sms_*.rs`); these need no bus.
