"""HEAR module: GRAM-T, 128x2 (frequency x time) patches: 100 tokens per 2 s chunk; raw output 768-d every 20 ms.

Usage as `hear_gram.gram_t_patch`.
"""

from .runtime import hear_module

VARIANT = "gram_t_time"
load_model, get_scene_embeddings, get_timestamp_embeddings = hear_module(VARIANT)
