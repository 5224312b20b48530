# A few minutes on a 2-core CPU with the embedded scene corpus: a tiny GRAM-T whose loss visibly falls.
#   python -m training.train --preset=smoke --out_dir=runs/smoke
#   python -m training.train --out_dir=runs/smoke --resume --max_steps=200    # continue (schedule re-spans 200)
#   python -m training.train --preset=smoke --variant=gram_m_patch --model.headdim=32   # the same for GRAM-M
base = "paper"
model = dict(dim=128, depth=2, num_heads=4, mlp_dim=256, decoder_dim=64, decoder_depth=1, decoder_heads=8,
             d_state=32, headdim=32)
scene_preset = "smoke"
clips = 4
data_workers = 0  # 2-core CPU: synthesis in the loop
crops_per_clip = 8
max_steps = 120
warmup_steps = 10
lr = 1e-3
log_every = 10
ckpt_every = 40
image_every = 40
