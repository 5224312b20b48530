# `make demo` pretraining (training/presets/demo/full.py): a small GRAM-T on the embedded corpus in about a
# quarter of an hour on a 2-core CPU (the budget table behind these numbers is in README "make demo").
#   python -m training.train --preset=demo --out_dir=runs/demo
base = "smoke"
scene_preset = "demo"  # 256 BRIR sets (smoke: 32), so many directions are seen
clips = 4
crops_per_clip = 16  # crops share one synthesized scene: more crops per scene second (paper §3.3)
max_steps = 1000
warmup_steps = 50
lr = 1.5e-3
ckpt_every = 250
image_every = 250
progress = False
