"""hear_gram: GRAM spatial audio representations behind the HEAR API.

`import hear_gram` is itself a HEAR module for the default variant (GRAM-T, 16x8 patches):

    import hear_gram
    model = hear_gram.load_model()                 # weights from the Hugging Face Hub
    emb = hear_gram.get_scene_embeddings(audio, model)

The other variants are the modules `hear_gram.gram_t_patch`, `hear_gram.gram_t_time`,
`hear_gram.gram_m_patch` and `hear_gram.gram_m_time`.
"""

__version__ = "0.1.0"

DEFAULT_VARIANT = "gram_t_patch"


from .runtime import hear_module as _hear_module  # noqa: E402

load_model, get_scene_embeddings, get_timestamp_embeddings = _hear_module(DEFAULT_VARIANT)
