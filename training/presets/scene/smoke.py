# Scene distribution for smoke runs and tests: a bank of 8 rooms x 4 sets (~5 s to build), a small embedded
# source pool (~0.5 s). Fields are training.scenes.SceneConfig's; `--scene.<field>=` overrides them.
n_rooms = 8
sets_per_room = 4
n_speech = 32
n_notes = 32
n_events = 32
