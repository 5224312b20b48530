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


def load_model(model_file_path: str = "", **options):
    """HEAR `load_model` for the default variant (GRAM-T patch); see `hear_gram.runtime.load_runtime`."""
    from .runtime import load_runtime

    return load_runtime(DEFAULT_VARIANT, model_file_path, **options)


def get_scene_embeddings(audio, model):
    """HEAR scene embeddings: (n_sounds, scene_embedding_size) float32."""
    return model.get_scene_embeddings(audio)


def get_timestamp_embeddings(audio, model):
    """HEAR timestamp embeddings: ((n_sounds, n_frames, size) float32, (n_sounds, n_frames) ms)."""
    return model.get_timestamp_embeddings(audio)
