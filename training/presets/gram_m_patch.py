# GRAM-M (24 Mamba2 blocks), 16x8 patches, paper settings (gram_spec §3.2, §7.4). Install the `mamba` extra on
# CUDA for the fused kernels; the pure-PyTorch path trains too, slowly.
#   torchrun --standalone --nproc_per_node=8 -m training.train --preset=gram_m_patch --out_dir=runs/gram_m --clips=4
base = "paper"
variant = "gram_m_patch"
