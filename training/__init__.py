"""Scene synthesis and pretraining (run from a checkout; needs the `train` extra)."""
