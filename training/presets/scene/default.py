# The paper's scene distribution (training.scenes.SceneConfig defaults: paper §3.1/§3.3, gram_spec §7.2):
# a bank of 64 rooms x 16 sets (~3 min once, then cached on disk, ~200 MB) and the full embedded source pool.
