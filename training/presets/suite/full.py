# The larger mini Nat-HEAR suite (about an hour on a 2-core CPU).
sizes = (600, 200, 200)
localization_sizes = (1000, 200, 300)
