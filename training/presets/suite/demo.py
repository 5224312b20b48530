# What `make demo` evaluates on: localization tasks large enough for the probes to use (the log-mel and
# binaural-cue baselines are clearly better than chance there), smaller scene tasks.
sizes = (100, 40, 100)  # clips per scene task: train, valid, test
localization_sizes = (600, 150, 400)  # clips per localization task (400 test clips: paired intervals of about +-4 deg)
