"""Gymnasium environments of razn. Importing this package registers them."""

from gymnasium.envs.registration import register

register(id="razn/Zoom-v0", entry_point="envs.zoom:ZoomEnv")
