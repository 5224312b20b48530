# GRAM-M, 128x2 (time) patches, paper settings.
#   torchrun --standalone --nproc_per_node=8 -m training.train --preset=gram_m_time --out_dir=runs/gram_m_time --clips=4
base = "paper"
variant = "gram_m_time"
