"""Raw rig sessions: sync file, barcodes and clock alignment, Open Ephys events, sorting output."""
