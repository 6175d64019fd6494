"""`SceneGenerator`: the toolkit's built-in data — procedural scenes, deterministic by seed, cheap on a CPU.

Each scene holds 1-3 objects (8 shapes x 8 colours x 3 sizes by default; `palette` and `shapes` choose others) at
distinct depths, rendered with consistent occlusion; it gives an RGB image, a depth map, COCO boxes, captions of
several styles and VQA question-answer pairs; `clip()` animates a scene into a short clip with motion. Captions of
the `short` and `class` styles repeat across many images, so UniCL's shared-text positives really occur.

Held-out split [ours]: one (shape, colour) combination per shape never appears in the training split, on any object
(`HELDOUT_COMBINATIONS` by default: one colour per shape and one shape per colour; `heldout_combinations`). In the
held-out split the primary object (objects[0], the ImageFolder class) always has a held-out combination, so
zero-shot classification there tests generalisation to unseen combinations of seen shapes and colours; its other
objects may have any combination.

Test split [ours]: drawn like the training split (seen combinations only) from its own random stream, so its images
are never training images: the in-distribution test set.
"""

import numpy as np

from florence_keras.data import ground_plane
from florence_keras.data import scene as scene_lib
from florence_keras.data.ground_plane import GroundPlane

SPLITS = ("train", "heldout", "test")
LAYOUTS = ("flat", "ground_plane")
_SPLIT_IDS = {"train": 0, "heldout": 1, "test": 2}

# (shape, colour) pairs that never occur in the training split: shape i gets colour (3 i + 1) mod 8
# (`heldout_combinations` of the default shapes and palette).
HELDOUT_COMBINATIONS = (
    ("circle", "green"),
    ("square", "purple"),
    ("triangle", "pink"),
    ("star", "blue"),
    ("ring", "orange"),
    ("cross", "red"),
    ("diamond", "yellow"),
    ("hexagon", "cyan"),
)
# The caption mix [ours, docs/training_science.md]: a quarter of the captions name the shape alone and a tenth the
# colour alone. UniCL makes images with the same text positives of each other, so "a circle" pulls circles of every
# colour together (and "a red object" red objects of every shape): with only colour-and-shape captions a colour-only
# encoder already explains most of the contrastive loss.
CAPTION_STYLE_PROBABILITIES = {"short": 0.15, "class": 0.25, "colour": 0.1, "photo": 0.2, "count": 0.2, "depth": 0.1}
_OBJECT_COUNT_PROBABILITIES = (0.4, 0.35, 0.25)  # 1, 2, 3 objects
_MIN_VISIBLE_FRACTION = 0.4


def heldout_combinations(shapes, colours):
    """The held-out (shape, colour) pairs of any shape list and palette: shape i gets colour (s i + 1) mod C, where
    C is the number of colours and s the smallest stride >= 3 coprime with C, so no colour is held out for two shapes
    before every colour has been once. The default 8 x 8 gives `HELDOUT_COMBINATIONS`.

    Example:
    >>> heldout_combinations(("circle", "square", "ring"), ("red", "green", "blue"))
    (('circle', 'green'), ('square', 'blue'), ('ring', 'red'))
    """
    shapes, colours = tuple(shapes), tuple(colours)
    if len(shapes) < 2 or len(colours) < 2:
        raise ValueError(f"Held-out combinations need >= 2 shapes and >= 2 colours (each keeps a seen pair). "
                         f"Received: shapes={shapes!r}, colours={colours!r}")
    stride = next(s for s in range(3, 3 + len(colours) + 1) if np.gcd(s, len(colours)) == 1)
    return tuple((shape, colours[(stride * i + 1) % len(colours)]) for i, shape in enumerate(shapes))


class SceneGenerator:
    """Deterministic procedural scenes and clips.

    Args:
        image_size: int, side of the square images (>= 32).
        seed: int, the dataset seed; scene `i` of a split depends only on `(seed, split, i)`.
        max_objects: int in 1..3, the most objects in a scene.
        caption_style_probabilities: dict style -> probability (styles of `scene.CAPTION_STYLES`, summing to 1):
            how often each style is a scene's caption. Defaults to `CAPTION_STYLE_PROBABILITIES`. Images do not
            depend on it (the style is drawn last), so two generators that differ only here give the same images.
        layout: `"flat"` (the default: objects at random depths in front of a backdrop; depth is not visible in the
            image) or `"ground_plane"` (a camera over a floor: an object's depth sets its apparent size and the row
            it stands on, and the floor's depth follows its row: `ground_plane.GroundPlane`).
        clip_distractor_speed: float >= 0, the other objects' speed in `clip()` relative to today's (`1.0`, the
            default, keeps today's clips byte-identical; `0.25` makes the labelled primary object the clearly
            dominant motion, `0.0` keeps the others still).
        palette: the colours: a name of `scene.PALETTES` (`"default"`: `scene.COLOURS`; `"alt"`: eight other
            colours, `scene.ALT_COLOURS`) or a dict colour name -> `(r, g, b)` (>= 2 colours, one-word names).
        shapes: the shapes drawn, a subset of `scene.SHAPES` (>= 2; kept in `SHAPES` order); None: all eight.
            The held-out pairs follow both lists (`heldout_combinations`); the defaults keep today's scenes
            byte-identical.

    Example:
    >>> generator = SceneGenerator(image_size=64, seed=0)
    >>> scene = generator.scene(0)
    >>> scene.image.shape, scene.depth.dtype.name, scene.boxes.shape[1]
    ((64, 64, 3), 'float32', 4)
    >>> generator.scene(0).caption == scene.caption
    True
    """

    shapes = scene_lib.SHAPES
    colours = tuple(scene_lib.COLOURS)

    def __init__(self, image_size=64, seed=0, max_objects=3, caption_style_probabilities=None, layout="flat",
                 clip_distractor_speed=1.0, palette="default", shapes=None):
        if not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"`image_size` must be an int >= 32. Received: image_size={image_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"`seed` must be an int >= 0. Received: seed={seed!r}")
        if max_objects not in (1, 2, 3):
            raise ValueError(f"`max_objects` must be 1, 2 or 3. Received: max_objects={max_objects!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"`layout` must be one of {LAYOUTS}. Received: layout={layout!r}")
        self.layout = layout
        if not clip_distractor_speed >= 0.0:
            raise ValueError(f"`clip_distractor_speed` must be >= 0. Received: {clip_distractor_speed!r}")
        self.clip_distractor_speed = float(clip_distractor_speed)
        styles = dict(CAPTION_STYLE_PROBABILITIES if caption_style_probabilities is None
                      else caption_style_probabilities)
        unknown = sorted(set(styles) - set(scene_lib.CAPTION_STYLES))
        if unknown or not styles or min(styles.values()) < 0 or abs(sum(styles.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"`caption_style_probabilities` must map styles of {scene_lib.CAPTION_STYLES} to probabilities "
                f"summing to 1. Received: caption_style_probabilities={caption_style_probabilities!r}"
            )
        self.caption_style_probabilities = styles
        self.image_size = image_size
        self.seed = int(seed)
        self.max_objects = max_objects
        self.palette = self._palette(palette)
        self.colours = tuple(self.palette)
        self.shapes = self._shapes(shapes)
        self.heldout_combinations = heldout_combinations(self.shapes, self.colours)
        heldout = set(self.heldout_combinations)
        every = [(shape, colour) for shape in self.shapes for colour in self.colours]
        self.train_combinations = tuple(pair for pair in every if pair not in heldout)

    @staticmethod
    def _palette(palette):
        if isinstance(palette, str):
            if palette not in scene_lib.PALETTES:
                raise ValueError(f"`palette` must be one of {sorted(scene_lib.PALETTES)} or a dict name -> (r, g, b). "
                                 f"Received: palette={palette!r}")
            return dict(scene_lib.PALETTES[palette])
        try:
            palette = {name: tuple(int(v) for v in rgb) for name, rgb in dict(palette).items()}
        except (TypeError, ValueError):
            palette = None
        if (not palette or len(palette) < 2 or any(not isinstance(n, str) or not n.isalpha() for n in palette)
                or any(len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) for rgb in palette.values())):
            raise ValueError("`palette` must be a palette name or a dict of >= 2 one-word colour names -> (r, g, b) "
                             "in 0..255.")
        return palette

    @staticmethod
    def _shapes(shapes):
        if shapes is None:
            return scene_lib.SHAPES
        shapes = [shapes] if isinstance(shapes, str) else list(shapes)
        unknown = sorted(set(shapes) - set(scene_lib.SHAPES))
        if unknown or len(set(shapes)) != len(shapes) or len(shapes) < 2:
            raise ValueError(f"`shapes` must be >= 2 distinct names of {scene_lib.SHAPES}. Received: shapes={shapes!r}")
        return tuple(shape for shape in scene_lib.SHAPES if shape in shapes)

    @property
    def class_names(self):
        """The classes (shapes), in label order."""
        return list(self.shapes)

    def _rng(self, split, index, stream):
        if split not in _SPLIT_IDS:
            raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"`index` must be an int >= 0. Received: index={index!r}")
        return np.random.default_rng([self.seed, _SPLIT_IDS[split], int(index), stream])

    def _make_object(self, rng, combination, depth):
        shape, colour = combination
        size = scene_lib.SIZES[int(rng.integers(len(scene_lib.SIZES)))]
        low, high = scene_lib.SIZE_RADII[size]
        radius = float(rng.uniform(low, high)) * self.image_size
        if self.layout == "ground_plane":  # depth sets the apparent size and the row the object stands on
            radius, center = GroundPlane.place_object(radius, depth, rng, self.image_size)
        else:
            margin = radius + 1.0
            center = tuple(float(v) for v in rng.uniform(margin, self.image_size - margin, 2))
        angle = float(rng.uniform(-15.0, 15.0)) if shape not in ("circle", "ring") else 0.0
        jitter = rng.integers(-18, 19, 3)
        rgb = tuple(min(255, max(0, c + int(j))) for c, j in zip(self.palette[colour], jitter))
        return scene_lib.SceneObject(shape, colour, size, radius, center, angle, float(depth), rgb)

    def _visible_enough(self, objects):
        visible, full = scene_lib.visible_masks(objects, self.image_size)
        return all(v.sum() >= _MIN_VISIBLE_FRACTION * f.sum() for v, f in zip(visible, full))

    def scene(self, index, split="train"):
        """Scene number `index` of a split (deterministic).

        Args:
            index: int >= 0.
            split: `"train"`, `"heldout"` or `"test"`.

        Returns:
            `Scene`.
        """
        rng = self._rng(split, index, 0)
        count = 1 + int(rng.choice(len(_OBJECT_COUNT_PROBABILITIES), p=_OBJECT_COUNT_PROBABILITIES))
        count = min(count, self.max_objects)
        ground = self.layout == "ground_plane"
        near, far = ground_plane.OBJECT_DEPTHS if ground else (scene_lib.NEAR_DEPTH, scene_lib.FAR_DEPTH)
        depths = np.sort(rng.uniform(near, far, count))
        train = self.train_combinations
        primary_pool = self.heldout_combinations if split == "heldout" else train
        others_pool = train + self.heldout_combinations if split == "heldout" else train
        objects = [self._make_object(rng, primary_pool[int(rng.integers(len(primary_pool)))], depths[0])]
        for depth in depths[1:]:
            for _ in range(20):  # re-draw until every object stays visible enough
                candidate = self._make_object(rng, others_pool[int(rng.integers(len(others_pool)))], depth)
                if self._visible_enough(objects + [candidate]):
                    objects.append(candidate)
                    break
        background = scene_lib.Background(
            level=float(rng.uniform(45.0, 120.0)),
            gradient=float(rng.uniform(-30.0, 30.0)),
            tint=tuple(float(v) for v in rng.uniform(-10.0, 10.0, 3)),
            noise_seed=int(rng.integers(2**31)),
            ground=GroundPlane.draw(rng) if ground else None,
        )
        styles = list(self.caption_style_probabilities)
        probabilities = np.array(list(self.caption_style_probabilities.values()), np.float64)
        style = styles[int(rng.choice(len(styles), p=probabilities / probabilities.sum()))]
        return scene_lib.Scene(index, split, self.image_size, objects, background, style, int(rng.integers(2**31)),
                               shapes=self.shapes)

    def scenes(self, num_scenes, split="train", start=0):
        """Iterates over scenes `start .. start + num_scenes - 1` of a split.

        Args:
            num_scenes: int.
            split: `"train"`, `"heldout"` or `"test"`.
            start: int, the first index.

        Yields:
            `Scene`.
        """
        for index in range(start, start + num_scenes):
            yield self.scene(index, split)

    def clip(self, index, num_frames=8, split="train"):
        """A clip of scene `index` in motion (deterministic).

        Objects move with constant velocities and bounce off the borders, except the primary object, whose
        velocity is chosen so it never bounces: its direction is the clip's label.

        Args:
            index: int >= 0, the clip's seed within the split (the clip starts from `scene(index, split)`).
            num_frames: int >= 2.
            split: `"train"`, `"heldout"` or `"test"`.

        Returns:
            `scene.Clip`.
        """
        if not isinstance(num_frames, int) or num_frames < 2:
            raise ValueError(f"`num_frames` must be an int >= 2. Received: num_frames={num_frames!r}")
        start = self.scene(index, split)
        rng = self._rng(split, index, 1)
        size = self.image_size
        speed_unit = size / 64.0
        velocities = rng.uniform(-2.5, 2.5, (len(start.objects), 2)) * speed_unit
        if self.clip_distractor_speed != 1.0:  # 1.0: today's clips, untouched
            velocities = velocities * self.clip_distractor_speed
        # The primary object moves mostly along one axis, in a direction it has room for.
        primary = start.objects[0]
        directions = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
        room = {
            "left": primary.center[0] - primary.radius,
            "right": size - primary.center[0] - primary.radius,
            "up": primary.center[1] - primary.radius,
            "down": size - primary.center[1] - primary.radius,
        }
        candidates = [name for name in room if room[name] >= 0.5 * max(room.values())]
        direction = candidates[int(rng.integers(len(candidates)))]
        speed = min(float(rng.uniform(1.0, 2.5)) * speed_unit, room[direction] / (num_frames - 1))
        unit = np.array(directions[direction], np.float64)
        velocities[0] = unit * speed + (1 - np.abs(unit)) * rng.uniform(-0.3, 0.3) * min(speed, 1.0)
        initial_velocities = velocities.astype(np.float32)
        frames, depths, boxes = [], [], []
        objects = [scene_lib.SceneObject(**{**vars(obj)}) for obj in start.objects]
        positions = np.array([obj.center for obj in objects], np.float64)
        for _ in range(num_frames):
            for obj, position in zip(objects, positions):
                obj.center = (float(position[0]), float(position[1]))
            image, depth, _ = scene_lib.render(objects, start.background, size)
            frames.append(image)
            depths.append(depth)
            boxes.append(np.array([obj.box for obj in objects], np.float32).reshape(-1, 4))
            positions = positions + velocities
            for i, obj in enumerate(objects):  # bounce
                for axis in range(2):
                    low, high = obj.radius, size - obj.radius
                    if positions[i, axis] < low or positions[i, axis] > high:
                        velocities[i, axis] *= -1
                        positions[i, axis] = np.clip(positions[i, axis], low, high)
        label = f"moving {direction}"
        return scene_lib.Clip(
            scene=start,
            velocities=initial_velocities,
            frames=np.stack(frames),
            depths=np.stack(depths),
            boxes=boxes,
            label=label,
            caption=f"{scene_lib.article(primary.name)} {primary.name} {label}",
        )
