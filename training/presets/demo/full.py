# `make demo`: the main job (training/presets/demo.py pretraining, the `demo` suite, evaluation).
train = ("--preset=demo",)
suite = "demo"
random_config = "same"  # the random-init column is exactly the model training started from
random_seeds = 3  # init seeds 0-2 of that architecture, averaged per test clip: one init draw is not the result
recon_scenes = 32
parallel = True  # the suite is built on one core while the model trains on the other
