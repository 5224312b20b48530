# Mini Nat-HEAR suite for tests and the CI demo: a few minutes on one CPU core (python -m training.minisuite).
sizes = (30, 10, 10)  # clips per scene task: train, valid, test
localization_sizes = (30, 10, 10)  # clips per localization task
