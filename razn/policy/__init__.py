"""The zoom policies g_i: their config (:mod:`.config`), the image encoder for
Stable-Baselines3 (:mod:`.features`) and their safe storage (:mod:`.store`).

Nothing is imported here so that configs can load without importing Stable-Baselines3.
"""
