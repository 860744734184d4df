"""The lifecycle logic: intake, analysis, split and estimate, matching, heartbeats,
render outputs, verification, payments. HTTP handlers and RQ tasks call these."""
