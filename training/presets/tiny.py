# The tiny model: seconds on a CPU. One preset for the tests (tests/test_train.py), the CI demo
# (training/presets/demo/ci.py) and the report's `--random-config tiny` column (its `model`).
#   python -m training.train --preset=tiny --out_dir=/tmp/gram_tiny
base = "smoke"
model = dict(dim=64, depth=2, num_heads=4, mlp_dim=128, decoder_dim=32, decoder_depth=1, decoder_heads=8,
             d_state=16, headdim=16)
clips = 2
crops_per_clip = 4
max_steps = 16
warmup_steps = 2
lr = 2e-3
log_every = 4
ckpt_every = 8
image_every = 0
progress = False
tensorboard = False
