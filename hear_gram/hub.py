"""Where weights come from: a local file, a local folder, or a Hugging Face Hub repository.

`resolve_weights(spec, variant)` returns (path to model.safetensors, path to config.json or None):

- `""` / None: the variant's default Hub repo (`Variant.repo_id`, `Variant.revision`), then its
  `fallback_repo_ids` in order (gram_t_patch: labhamlet/gramt-binaural-frame, then labhamlet/gramt-binaural);
- an existing `.safetensors` file, or a folder holding `model.safetensors` (and maybe `config.json`);
- `"owner/name"` or `"owner/name@revision"`: that Hub repo.

Downloads go through `huggingface_hub.hf_hub_download`, so the standard cache (`HF_HOME`,
`HF_HUB_CACHE`), `HF_HUB_OFFLINE=1` and tokens (`HF_TOKEN`) behave as everywhere else.
"""

import os

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _looks_like_repo_id(spec: str) -> bool:
    name = spec.split("@", 1)[0]
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not spec.endswith(".safetensors")


def _fetch(repo_id: str, revision: str):
    """-> (weights path, config.json path or None) of one repo; any failure raises."""
    from huggingface_hub import hf_hub_download

    weights = hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision)
    try:
        config = hf_hub_download(repo_id, CONFIG_NAME, revision=revision)
    except Exception:  # no config.json, or offline and not cached: the shapes of the weights suffice
        config = None
    return weights, config


def _download(tries, what: str):
    """The first of `tries` [(repo_id, revision), ...] that yields weights; the error lists every try."""
    failures = []
    for repo_id, revision in tries:
        try:
            return _fetch(repo_id, revision)
        except Exception as e:  # network, offline cache miss, auth, missing repo or file: try the next
            failures.append(f"  {repo_id}{'@' + revision if revision else ''}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}")
    raise OSError(
        f"could not get {WEIGHTS_NAME} of {what} from the Hugging Face Hub; tried:\n" + "\n".join(failures) + "\n"
        f"Pass weights explicitly instead: load_model('path/to/model.safetensors'), a folder holding "
        f"{WEIGHTS_NAME}, or another repo as 'owner/name[@revision]' (model option repo_id=...). "
        f"Offline, the file must already be in the Hub cache (HF_HUB_CACHE).")


def split_repo_spec(spec: str):
    """'owner/name[@revision]' -> (repo_id, revision or None), or None when `spec` is not one."""
    if not _looks_like_repo_id(spec):
        return None
    repo, _, rev = spec.partition("@")
    return repo, (rev or None)


def resolve_weights(spec, variant, revision: str = None, repo_id: str = None):
    """-> (weights path, config.json path or None); see the module docstring."""
    spec = "" if spec is None else os.fspath(spec)
    if not spec:
        if repo_id:
            return _download([(repo_id, revision)], variant.name)
        note = "" if variant.repo_confirmed else " (this default repo id is not confirmed by the authors)"
        tries = [(r, revision or variant.revision) for r in (variant.repo_id, *variant.fallback_repo_ids)]
        return _download(tries, f"{variant.name}{note}")
    if os.path.isdir(spec):
        w = os.path.join(spec, WEIGHTS_NAME)
        if not os.path.exists(w):
            raise FileNotFoundError(f"folder {spec} holds no {WEIGHTS_NAME}")
        c = os.path.join(spec, CONFIG_NAME)
        return w, (c if os.path.exists(c) else None)
    if os.path.exists(spec):
        c = os.path.join(os.path.dirname(os.path.abspath(spec)), CONFIG_NAME)
        return spec, (c if os.path.exists(c) else None)
    repo = split_repo_spec(spec)
    if repo:
        return _download([(repo[0], repo[1] or revision)], variant.name)
    raise FileNotFoundError(f"weights not found: {spec!r} is neither a file, a folder, nor a Hub repo id "
                            f"'owner/name[@revision]'")
