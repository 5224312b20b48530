# Seconds on a CPU: the tests' configuration (tests/test_train.py).
#   python -m training.train --preset=ci --out_dir=/tmp/gram_ci
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
