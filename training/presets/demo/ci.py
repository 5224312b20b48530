# `python -m training.demo --profile ci`: the whole main job at test size (tests/test_demo.py).
train = ("--preset=tiny", "--max_steps=12")
suite = "tiny"
random_config = "same"
random_seeds = 2  # exercises the averaging over init seeds
recon_scenes = 8
parallel = False
