"""HEAR module: GRAM-M, 128x2 (frequency x time) patches: 100 tokens per 2 s chunk; raw output 768-d every 20 ms.

Usage as `hear_gram.gram_t_patch`; GRAM-M notes (CLS, Hub id) as `hear_gram.gram_m_patch`.
"""

from .runtime import hear_module

VARIANT = "gram_m_time"
load_model, get_scene_embeddings, get_timestamp_embeddings = hear_module(VARIANT)
