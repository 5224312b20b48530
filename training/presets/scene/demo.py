# Scene distribution of `make demo` (training/presets/demo.py): 32 rooms x 8 source placements = 256 BRIR sets
# (about a minute to build once, then cached on disk), so pretraining sees many directions, not a few dozen;
# a mid-sized embedded source pool. Fields are training.scenes.SceneConfig's.
n_rooms = 32
sets_per_room = 8
n_speech = 64
n_notes = 64
n_events = 64
