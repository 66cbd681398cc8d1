"""Host-side tools of the PTP lab: criterion reports, speed targets, result files."""
