"""`GroundPlane`: the built-in scenes' optional camera-over-a-floor layout, where depth is visible in the image.

In the default (`"flat"`) layout an object's depth is drawn independently of how it looks, so no model can read it
from the pixels. In the `"ground_plane"` layout (`SceneGenerator(layout="ground_plane")`) the scene is what a
camera sees over a flat floor [ours], as in real photos:

* A pinhole camera with focal length = the image side `S` (pixels) and a horizontal optical axis stands
  `CAMERA_HEIGHT` metres above the floor; the horizon is the row `HORIZON · S`. A floor point at depth `Z` (metres
  along the optical axis) is seen at the row `v = HORIZON + CAMERA_HEIGHT / Z` (in fractions of the side).
* The floor ends at a fronto-parallel wall at `wall_depth` metres (drawn per scene), seen above the row
  `HORIZON + CAMERA_HEIGHT / wall_depth`. Background depth: the floor's `CAMERA_HEIGHT / (v - HORIZON)` below that
  row (at each pixel's centre row), the wall's constant depth above. The wall and the floor differ in brightness,
  and the floor is striped every metre of depth (tiles seen in perspective).
* Objects are flat sprites standing on the floor, facing the camera: an object at depth `Z` with the size word's
  radius `R` (`scene.SIZE_RADII`, the radius it would have at `REFERENCE_DEPTH`) is drawn with the radius
  `R · REFERENCE_DEPTH / Z` (apparent size ∝ 1 / depth) and the bottom of its circumscribed circle on the floor row
  of `Z` (nearer objects stand lower and are larger). Its horizontal position is free.

So every pixel's depth follows from the image: floor pixels from their row, the wall from the row where the floor
ends, an object from the row it stands on and its apparent size.
"""

import dataclasses

import numpy as np

# The camera [ours]: horizon row and height (focal length = the image side), fixed for every scene.
HORIZON = 0.1
CAMERA_HEIGHT = 1.5
# Objects stand between these depths (metres); the nearest floor row at the bottom of the image is at
# CAMERA_HEIGHT / (1 - HORIZON) = 1.67 m. Their drawn radius is the size word's radius at REFERENCE_DEPTH.
OBJECT_DEPTHS = (1.8, 6.0)
REFERENCE_DEPTH = 2.5
WALL_DEPTHS = (8.0, 12.0)
_MAX_RADIUS = 0.45  # fraction of the side: an object always fits in the image


@dataclasses.dataclass
class GroundPlane:
    """One scene's floor and wall (the camera is fixed: module constants).

    Attributes:
        wall_depth: float, metres to the wall.
        floor_offset: float >= 25, how much the floor's grey level differs from the wall's (brighter on a dark
            wall, darker on a bright one), so the floor's end is visible.
        stripe_contrast: float, grey levels between the floor's alternate one-metre stripes.

    Example:
    >>> from florence_keras.data.scene import SIZE_RADII
    >>> from florence_keras.data.scene_generator import SceneGenerator
    >>> obj = SceneGenerator(image_size=64, layout="ground_plane").scene(0).primary
    >>> round((obj.center[1] + obj.radius) / 64, 9) == round(float(GroundPlane.floor_row(obj.depth)), 9)
    True
    >>> low, high = SIZE_RADII[obj.size]  # drawn radius = the size word's radius x REFERENCE_DEPTH / depth
    >>> low <= obj.radius / 64 * obj.depth / REFERENCE_DEPTH <= high
    True
    >>> float(GroundPlane.floor_depth(GroundPlane.floor_row(4.0)))
    4.0
    """

    wall_depth: float
    floor_offset: float
    stripe_contrast: float

    @classmethod
    def draw(cls, rng):
        """A random floor and wall from a numpy `Generator` (three draws)."""
        wall_depth = float(rng.uniform(*WALL_DEPTHS))
        offset = float(rng.uniform(25.0, 60.0))
        contrast = float(rng.uniform(8.0, 16.0))
        return cls(wall_depth=wall_depth, floor_offset=offset, stripe_contrast=contrast)

    @staticmethod
    def floor_row(depth):
        """The row (fraction of the side, from the top) where the floor is at `depth` metres."""
        return HORIZON + CAMERA_HEIGHT / np.asarray(depth, np.float64)

    @staticmethod
    def floor_depth(row):
        """Depth (metres) of the floor seen at `row` (fraction of the side; must be below the horizon)."""
        return CAMERA_HEIGHT / (np.asarray(row, np.float64) - HORIZON)

    @staticmethod
    def place_object(radius, depth, rng, image_size):
        """Apparent radius and centre of an object standing on the floor at `depth`.

        Args:
            radius: float, pixels: the object's radius at `REFERENCE_DEPTH`.
            depth: float, metres.
            rng: numpy `Generator` (one draw: the horizontal position).
            image_size: int S.

        Returns:
            `(radius, (x, y))` in pixels.
        """
        radius = min(radius * REFERENCE_DEPTH / float(depth), _MAX_RADIUS * image_size)
        bottom = float(GroundPlane.floor_row(depth)) * image_size
        x = float(rng.uniform(radius + 1.0, image_size - radius - 1.0))
        return radius, (x, bottom - radius)

    def depth_map(self, image_size):
        """float32 `[S, S]` background depth: the floor up to the wall, then the wall."""
        rows = (np.arange(image_size, dtype=np.float64) + 0.5) / image_size
        wall_row = float(self.floor_row(self.wall_depth))
        below = rows > wall_row
        column = np.full(image_size, self.wall_depth, np.float64)
        column[below] = self.floor_depth(rows[below])
        return np.repeat(column.astype(np.float32)[:, None], image_size, axis=1)

    def render(self, background, noise_rng, image_size):
        """The background's pixels and depth.

        Args:
            background: the scene's `scene.Background` (grey level, vertical gradient, tint).
            noise_rng: numpy `Generator` of the pixel noise.
            image_size: int S.

        Returns:
            `(image, depth)`: float32 `[S, S, 3]` (not yet clipped) and float32 `[S, S]` metres.
        """
        depth = self.depth_map(image_size)
        rows = np.linspace(0.0, 1.0, image_size, dtype=np.float32)
        level = background.level + background.gradient * (rows - 0.5)
        floor = depth[:, 0] < self.wall_depth
        stripes = np.where(np.floor(depth[:, 0]).astype(np.int64) % 2 == 0, 0.5, -0.5) * self.stripe_contrast
        offset = self.floor_offset if background.level < 82.5 else -self.floor_offset  # stays within [0, 255]
        level = level + np.where(floor, offset + stripes, 0.0).astype(np.float32)
        image = level[:, None, None] + np.asarray(background.tint, np.float32) + np.zeros((1, image_size, 3),
                                                                                            np.float32)
        image += 5.0 * noise_rng.standard_normal((image_size, image_size, 3), dtype=np.float32)
        return image.astype(np.float32), depth
