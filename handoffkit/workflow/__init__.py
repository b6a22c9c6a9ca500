"""The decisions taken on the record: triage, calibration, routing, exceptions, verification, SLAs."""
