# GRAM-T, 16x8 patches: the paper's run (paper §3.3; gram_spec §7.4). 8 GPUs:
#   torchrun --standalone --nproc_per_node=8 -m training.train --preset=paper --out_dir=runs/gram_t_patch --clips=4
# one GPU:  python -m training.train --preset=paper --out_dir=runs/gram_t_patch
# `clips` is per rank: the global batch is clips x world size x 16 crops (paper: 32 clips -> 512 crops; the
# official GRAM-T configs used 96 clips -> 1536 crops, gram_spec §9.3).
# Add user corpora with --scene.source_shards="('/data/audioset/unbal_train000.tar',)" etc. (training/scenes.py).
variant = "gram_t_patch"
model = dict(log_eps=1e-5, mask_ratio=0.8)  # training log offset (§9.1); 160 of 200 tokens masked (§5.1)
scene_preset = "default"
clips = 32
crops_per_clip = 16
input_frames = 1024
scene_backend = "auto"  # on a GPU: scene material on the device, the host only draws (benchmarks/train_step.py)
data_workers = 0
max_steps = 500_000
warmup_steps = 10_000
lr = 2e-4
min_lr = 0.0
betas = (0.9, 0.95)
weight_decay = 0.01
grad_clip = 5.0
dtype = "auto"  # bf16 autocast on CUDA
log_every = 50
ckpt_every = 5000
image_every = 1000
