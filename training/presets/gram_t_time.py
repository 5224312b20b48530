# GRAM-T, 128x2 (time) patches, paper settings: 80 of 100 tokens masked (gram_spec §5.1).
#   torchrun --standalone --nproc_per_node=8 -m training.train --preset=gram_t_time --out_dir=runs/gram_t_time --clips=4
base = "paper"
variant = "gram_t_time"
