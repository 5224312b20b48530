# `make demo` pretraining (training/presets/demo/full.py): a small GRAM-T on the embedded corpus in about 18
# minutes (measured: 1,074 s) on one core of a 2-core CPU (the other builds the evaluation suite
# meanwhile); the budget table behind these numbers is in README "The evidence of learning".
#   python -m training.train --preset=demo --out_dir=runs/demo
base = "smoke"
# 256 wide (smoke: 128): a 2 x 16 x 8 patch holds 256 values, so the patch embedding does not compress it; chosen
# on valid over the 128-wide model (training seeds 0-1 vs 0-2, README "The evidence of learning")
model = dict(dim=256, mlp_dim=512)
scene_preset = "demo"  # 256 BRIR sets (smoke: 32), so pretraining hears many directions, not a few dozen
clips = 4
crops_per_clip = 16  # 16 crops share one synthesized scene (paper §3.3): twice smoke's crops per scene second
max_steps = 900
warmup_steps = 40
lr = 1.5e-3
ckpt_every = 125
image_every = 250
progress = False
